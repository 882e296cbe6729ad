"""An erasure reaches Kafka: accounts' ``user.erased`` on ``<prefix>accounts``, valid, naming only the account id."""

import json

from nameko import config
from nameko.standalone.rpc import ServiceRpcClient

from bridge.kafka_relay import KafkaBridge
from schemas.events import validate
from services.accounts.service import AccountsService

CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


def test_user_erased_reaches_kafka_without_personal_data(service_config, bridge_config, container_factory,
                                                         kafka_reader):
    with config.patch(CHEAP_ARGON2):
        container_factory(KafkaBridge).start()
        container_factory(AccountsService).start()
        with ServiceRpcClient("accounts") as accounts:
            ann = accounts.register("ann@example.com", "correct-horse", "Ann Lee", "+447700900123")
            accounts.erase_user(ann["id"])

    reader = kafka_reader(f"{config['KAFKA_TOPIC_PREFIX']}accounts")
    [record] = [r for r in reader.wait_for(lambda rs: any(r.value["event_type"] == "user.erased" for r in rs),
                                           message="user.erased on Kafka") if r.value["event_type"] == "user.erased"]
    validate(record.value)
    assert record.key == str(ann["id"]) and record.value["data"].keys() == {"id", "erased_at"}
    text = json.dumps(record.value) + json.dumps(record.headers)
    assert not any(secret in text for secret in ("ann@example.com", "Ann Lee", "+447700900123"))
