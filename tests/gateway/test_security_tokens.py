"""JWT checks over HTTP against the running gateway and accounts: forged, expired, premature, incomplete and
tampered tokens are 401; a deleted account's token stops working on every replica at once (``user.deleted``),
long before the cached account would expire."""

import base64
import json
import time

import jwt
import pytest
from nameko import config
from nameko.constants import WEB_SERVER_CONFIG_KEY
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.utils import find_free_port

from gateway.auth import LEEWAY_SECONDS, InvalidToken, decode_token
from gateway.service import GatewayService
from services.accounts.service import AccountsService
from tests.conftest import BASE_CONFIG
from tests.gateway.conftest import GatewayClient
from tests.gateway.helpers import assert_error
from tests.support import wait_until

SECRET = BASE_CONFIG["JWT_SECRET"]
FAST = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1,
        "AUTH_USER_CACHE_SECONDS": 600}


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(user_id, **overrides):
    now = int(time.time())
    values = {"sub": str(user_id), "role": "customer", "iat": now, "exp": now + 600, "jti": "j1"}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def sign(payload, secret=SECRET, algorithm="HS256"):
    return jwt.encode(payload, secret, algorithm=algorithm)


def test_not_yet_valid_tokens_are_refused_beyond_the_leeway():
    now = int(time.time())
    for premature in ({"nbf": now + LEEWAY_SECONDS + 60}, {"iat": now + LEEWAY_SECONDS + 60}):
        with pytest.raises(InvalidToken):
            decode_token(sign(claims(1, **premature)), SECRET)
    skewed = decode_token(sign(claims(1, iat=now + 5, nbf=now + 5)), SECRET)  # a replica's clock ahead
    assert skewed["sub"] == "1"


@pytest.fixture
def accounts(service_config, container_factory):
    with config.patch(FAST):
        container = container_factory(AccountsService)
        container.start()
        yield container


def gateway_replica(container_factory):
    port = find_free_port()
    with config.patch({**FAST, WEB_SERVER_CONFIG_KEY: f"127.0.0.1:{port}"}):
        container_factory(GatewayService).start()
    return GatewayClient(f"http://127.0.0.1:{port}")


@pytest.fixture
def replicas(accounts, container_factory):
    return gateway_replica(container_factory), gateway_replica(container_factory)


@pytest.fixture
def ann(replicas):
    http = replicas[0]
    user = http.post("/auth/register", json={"email": "ann@example.com", "password": "ann-password-1",
                                             "name": "Ann"}).json()
    token = http.post("/auth/token", json={"email": "ann@example.com", "password": "ann-password-1"})
    return user, token.json()["access_token"]


def test_every_kind_of_bad_token_is_401(replicas, ann):
    http, (user, good) = replicas[0], ann
    header, payload, signature = good.split(".")
    now = int(time.time())
    bad = {
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong key": sign(claims(user["id"]), secret="another-secret-0123456789-abcdefghijkl"),
        "other algorithm": sign(claims(user["id"]), algorithm="HS512"),
        "not yet valid (nbf)": sign(claims(user["id"], nbf=now + 3600)),
        "not yet valid (iat)": sign(claims(user["id"], iat=now + 3600)),
        "tampered payload": f"{header}.{b64(claims(user['id'], role='admin'))}.{signature}",
        "another user's id": f"{header}.{b64(claims(user['id'] + 1))}.{signature}",
        "garbage": "a.b.c",
        **{f"no {claim}": sign(claims(user["id"], **{claim: None})) for claim in ("sub", "role", "exp", "iat",
                                                                                  "jti")},
    }
    assert http.get("/auth/me", token=good).status_code == 200
    for name, token in bad.items():
        response = http.get("/auth/me", token=token)
        assert_error(response, 401, "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
    expired = http.get("/auth/me", token=sign(claims(user["id"], iat=now - 7200, exp=now - 3600)))
    assert_error(expired, 401, "token_expired")
    unknown = http.get("/auth/me", token=sign(claims(987654)))
    assert_error(unknown, 401, "invalid_token")


def test_a_deleted_accounts_token_stops_working_on_every_replica_at_once(replicas, ann):
    (user, token) = ann
    for replica in replicas:  # both replicas now hold the account in their 10-minute caches
        assert replica.get("/auth/me", token=token).json()["id"] == user["id"]

    with ServiceRpcClient("accounts") as accounts:
        accounts.delete_user(user["id"])

    for replica in replicas:
        wait_until(lambda replica=replica: replica.get("/auth/me", token=token).status_code == 401,
                   message="user.deleted to reach the replica")
        assert_error(replica.get("/auth/me", token=token), 401, "invalid_token")


def test_an_erased_accounts_token_stops_working_on_every_replica(replicas, ann):
    (user, token) = ann
    for replica in replicas:  # both replicas now hold the account in their 10-minute caches
        assert replica.get("/auth/me", token=token).json()["id"] == user["id"]

    assert replicas[0].delete("/users/me", token=token).status_code == 204

    assert_error(replicas[0].get("/auth/me", token=token), 401, "invalid_token")  # the replica that erased: at once
    wait_until(lambda: replicas[1].get("/auth/me", token=token).status_code == 401,
               message="user.erased to reach the other replica")
    assert_error(replicas[1].get("/auth/me", token=token), 401, "invalid_token")
