"""common.rpc over the real broker: answers of any size, a deadline, no service, and requests that stop declaring
the reply queue once one has been routed; every consumer reads the socket ahead (common.amqp)."""

import functools

import eventlet
import pytest
from kombu import Connection, Queue
from kombu.exceptions import OperationalError as BrokerError
from nameko import config
from nameko.exceptions import RemoteError, ReplyQueueExpiredWithPendingReplies
from nameko.standalone.rpc import ServiceRpcClient
from sqlalchemy.exc import OperationalError

from common import amqp
from common.errors import Conflict, DependencyUnavailable
from common.events import domain_event_handler
from common.rpc import ReplyListener, ServiceRpc, rpc
from tests.support import wait_until


class Echo:
    name = "echo"

    @rpc
    def echo(self, text):
        return text

    @rpc
    def sleep(self, seconds):
        eventlet.sleep(seconds)

    @domain_event_handler("caller", "echo.requested")
    def echo_event(self, envelope):
        pass


class Caller:
    name = "caller"

    echo_rpc = ServiceRpc("echo", timeout=0.5)
    nobody_rpc = ServiceRpc("nobody")

    @rpc
    def relay(self, text):
        return self.echo_rpc.echo(text)

    @rpc
    def relay_all(self, texts):
        return list(eventlet.GreenPool(16).imap(self.echo_rpc.echo, texts))

    @rpc
    def relay_sleep(self, seconds):
        try:
            return self.echo_rpc.sleep(seconds)
        except DependencyUnavailable as exc:
            return str(exc)

    @rpc
    def call_nobody(self):
        try:
            return self.nobody_rpc.anything()
        except DependencyUnavailable as exc:
            return str(exc)


class Recorder:
    name = "recorder"
    calls = []

    @rpc
    def record(self, text):
        Recorder.calls.append(text)
        return text


class RecorderCaller:
    name = "recorder_caller"

    recorder_rpc = ServiceRpc("recorder", timeout=0.5)

    @rpc
    def record(self, text):
        try:
            return self.recorder_rpc.record(text)
        except DependencyUnavailable as exc:
            return str(exc)


class Failing:
    name = "failing"

    @rpc
    def database_down(self):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "can't connect to 10.0.0.3"))

    @rpc
    def broker_down(self):
        raise BrokerError("[Errno 111] Connection refused")

    @rpc
    def sold_out(self):
        raise Conflict("Out of stock.", {"products": [1]}, code="insufficient_stock")

    @rpc
    def bug(self):
        raise KeyError("secret")


@pytest.fixture
def caller(rabbit_config, container_factory):
    for service in (Echo, Caller):
        container_factory(service).start()
    with ServiceRpcClient("caller") as client:
        yield client


def test_answers_of_every_size_arrive_whole_and_in_any_order(caller):
    # across py-amqp's frames, read-ahead buffers and the 128 KiB frame limit of the broker
    texts = [f"{n}:" + "x" * size for n, size in enumerate([0, 1, 100, 4090, 4096, 5000, 70_000, 300_000] * 6)]
    assert caller.relay_all(texts) == texts


def test_a_slow_answer_is_dependency_unavailable_and_no_service_too(caller):
    assert caller.relay_sleep(2) == "echo.sleep did not answer within 0.5s."
    assert caller.call_nobody() == "nobody.anything: the service is not running."
    assert caller.relay("still fine") == "still fine"


def test_only_the_first_request_declares_the_reply_queue(caller, monkeypatch):
    declared = []
    real_declare = Queue.declare

    def spy(queue, *args, **kwargs):
        declared.append(queue.name)
        return real_declare(queue, *args, **kwargs)

    monkeypatch.setattr(Queue, "declare", spy)
    caller.relay("first")
    first = [name for name in declared if name.startswith("rpc.reply-caller")]
    for n in range(5):
        assert caller.relay(str(n)) == str(n)

    assert len(first) == 1
    assert [name for name in declared if name.startswith("rpc.reply-caller")] == first


def test_a_request_its_caller_gave_up_on_is_never_run(rabbit_config, container_factory):
    # A command run after its caller's deadline belongs to nobody: a stock reservation for an abandoned order.
    recorder = container_factory(Recorder)
    recorder.start()
    container_factory(RecorderCaller).start()
    Recorder.calls.clear()
    with ServiceRpcClient("recorder_caller") as caller:
        assert caller.record("on time") == "on time"
        recorder.stop()  # its queue stays: the next request waits there, unanswered
        assert caller.record("late") == "recorder.record did not answer within 0.5s."
        eventlet.sleep(0.3)
        container_factory(Recorder).start()
        assert caller.record("after") == "after"
    assert Recorder.calls == ["on time", "after"]


def test_a_reply_awaited_before_the_listener_first_consumes_is_not_lost(rabbit_config, container_factory):
    container = container_factory(Caller)
    listener = next(extension for extension in container.extensions if isinstance(extension, ReplyListener))
    listener.setup()
    listener.register_for_reply("sent-while-the-container-starts")

    listener.check_for_lost_replies()  # its queue does not exist yet: nameko would call the reply lost

    listener.consumer.ready.set()  # after the first consume, a missing queue does mean lost replies
    with pytest.raises(ReplyQueueExpiredWithPendingReplies):
        listener.check_for_lost_replies()


def test_every_consumer_reads_ahead(rabbit_config, container_factory, monkeypatch):
    patched = []
    monkeypatch.setattr(amqp, "read_ahead", lambda transport: patched.append(type(transport).__name__))
    for service in (Echo, Caller):
        container_factory(service).start()

    # echo's and caller's RPC consumers, echo's event handler and caller's reply listener
    assert patched == ["TCPTransport"] * 4


def test_idle_consumers_wake_seldom_and_a_message_still_wakes_them_at_once(caller, monkeypatch):
    wakes = []
    monkeypatch.setattr(Connection, "heartbeat_check", lambda self, rate=2: wakes.append(self))
    eventlet.sleep(2.5)  # echo's and caller's RPC consumers, echo's event handler, caller's reply listener: all idle

    assert wakes == []  # kombu's default wakes each of the four every second
    assert caller.relay("hello") == "hello"  # within the 0.5 s deadline of caller's ServiceRpc


def test_a_short_heartbeat_wakes_the_consumers_often_enough_to_keep_their_connections(rabbit_config,
                                                                                       container_factory):
    with config.patch({"HEARTBEAT": 2}):
        containers = [container_factory(service) for service in (Echo, Caller)]
        for container in containers:
            container.start()
        with ServiceRpcClient("caller") as client:
            assert client.relay("before") == "before"
            consumers = [extension.consumer for container in containers for extension in container.extensions
                         if isinstance(getattr(extension, "consumer", None), amqp.WakesSeldom)]
            assert len(consumers) == 4
            connections = [consumer.channel_in_use.connection for consumer in consumers]
            eventlet.sleep(6)  # three heartbeats: the broker drops a connection silent for two

            assert client.relay("after") == "after"
    assert [consumer.channel_in_use.connection for consumer in consumers] == connections
    assert all(connection.connected for connection in connections)
    assert amqp.idle_wake_seconds(2) == 0.5 and amqp.idle_wake_seconds(60) == amqp.IDLE_WAKE_SECONDS


def test_read_ahead_asks_for_at_least_a_few_kilobytes():
    asked = []
    recv = functools.partial(amqp._recv_at_least, lambda size: asked.append(size) or b"")
    recv(7), recv(1), recv(100_000)
    assert asked == [amqp.READ_AHEAD_BYTES, amqp.READ_AHEAD_BYTES, 100_000]


def test_replies_are_consumed_without_acks_and_requests_with_them(caller, rabbit_manager):
    assert caller.relay("hello") == "hello"
    vhost = config["AMQP_URI"].rsplit("/", 1)[1]

    def ack_required():  # the management API lists consumers a few seconds late
        return {consumer["queue"]["name"]: consumer["ack_required"]
                for consumer in rabbit_manager._get("consumers", vhost)}

    wait_until(lambda: len(ack_required()) == 4, interval=0.5, message="every consumer listed")
    by_kind = {name.split("-")[0]: required for name, required in ack_required().items()}
    assert by_kind == {"rpc.reply": False, "rpc": True, "evt": True}


@pytest.fixture
def failing(rabbit_config, container_factory):
    container_factory(Failing).start()
    with ServiceRpcClient("failing") as client:
        yield client


@pytest.mark.parametrize("method", ["database_down", "broker_down"])
def test_a_worker_failing_on_infrastructure_answers_dependency_unavailable(failing, method):
    with pytest.raises(DependencyUnavailable) as raised:
        getattr(failing, method)()

    assert raised.value.code == "service_unavailable" and raised.value.status == 503
    assert "10.0.0.3" not in str(raised.value) and "Errno" not in str(raised.value)


def test_domain_errors_and_bugs_cross_as_they_were_raised(failing):
    with pytest.raises(Conflict) as conflict:
        failing.sold_out()
    with pytest.raises(RemoteError) as bug:
        failing.bug()

    assert conflict.value.code == "insufficient_stock" and conflict.value.details == {"products": [1]}
    assert bug.value.exc_type == "KeyError"
