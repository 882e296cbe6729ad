"""scripts.processes.Fleet, the supervisor of `make run` and the bench, on real child processes."""

import os
import signal
import subprocess
import sys

import pytest

from scripts.processes import Fleet, RestartPolicy, StartFailed
from scripts.tansu import free_port
from tests.support import wait_until

SERVE = "import http.server as s; s.HTTPServer(('127.0.0.1', {port}), s.SimpleHTTPRequestHandler).serve_forever()"


@pytest.fixture
def fleet(tmp_path):
    fleet = Fleet(tmp_path / "log", {"PATH": "/usr/bin:/bin"})
    yield fleet
    fleet.stop()


def test_waits_for_http_and_stops_every_child_it_started_or_adopted(fleet):
    port = free_port()
    server = fleet.start("server", [sys.executable, "-c", SERVE.format(port=port)])
    sleeper = fleet.adopt("sleeper", subprocess.Popen(["sleep", "60"]))

    fleet.wait_for_http(f"http://127.0.0.1:{port}/", timeout=20)
    assert fleet.check() is None
    fleet.stop(timeout=5)

    assert server.poll() is not None and sleeper.poll() is not None
    assert "GET / HTTP" in (fleet.log_dir / "server.log").read_text()


def test_a_child_that_exits_fails_the_start_and_names_its_log(fleet):
    fleet.start("broken", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"])

    with pytest.raises(StartFailed, match=r"broken exited with code 3: see .*broken\.log"):
        fleet.wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=20)

    assert fleet.wait_for_exit(interval=0.01) == ("broken", 3)
    assert (fleet.log_dir / "broken.log").read_text() == "bad config\n"


def test_nothing_answering_fails_after_the_timeout(fleet):
    fleet.start("sleeper", ["sleep", "60"])

    with pytest.raises(StartFailed, match="did not answer within 0.5s"):
        fleet.wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=0.5)


def test_a_child_that_ignores_sigterm_is_killed(fleet):
    stubborn = fleet.start("stubborn", [sys.executable, "-c", "import signal, time; "
                                        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
                                        "time.sleep(60)"])
    wait_until(lambda: "up" in fleet.log_path("stubborn").read_text(), message="SIGTERM ignored")

    fleet.stop(timeout=0.5)

    assert stubborn.returncode == -9


def test_supervised_child_killed_with_sigkill_comes_back_counted_logged_with_growing_backoff(tmp_path):
    fleet = Fleet(tmp_path / "log", {"PATH": "/usr/bin:/bin"}, restart=RestartPolicy(first=0.2, longest=5))
    try:
        first = fleet.start("worker", ["sleep", "60"])
        os.kill(first.pid, signal.SIGKILL)
        wait_until(lambda: fleet.supervise() is None and fleet.pids().get("worker") not in (None, first.pid),
                   timeout=10, message="worker restarted")
        second = fleet.pids()["worker"]
        assert fleet.registry.get_sample_value("pos_process_restarts_total", {"process": "worker"}) == 1
        os.kill(second, signal.SIGKILL)
        wait_until(lambda: fleet.supervise() is None and fleet.pids().get("worker") not in (None, second),
                   timeout=10, message="worker restarted again")
        assert fleet.registry.get_sample_value("pos_process_restarts_total", {"process": "worker"}) == 2
        log = (tmp_path / "log" / "supervisor.log").read_text().splitlines()
        assert "worker exited with code -9" in log[0] and "restart attempt 1 in 0.2s" in log[0]
        assert "restart attempt 2 in 0.4s" in log[1] and "worker.log" in log[1]
        survivor = fleet.children[0][1]
    finally:
        fleet.stop(timeout=5)
    assert survivor.poll() is not None and fleet.children == []


def test_an_adopted_child_that_exits_ends_supervision(tmp_path):
    fleet = Fleet(tmp_path / "log", {"PATH": "/usr/bin:/bin"}, restart=RestartPolicy(first=0.1))
    try:
        fleet.adopt("kafka", subprocess.Popen(["sh", "-c", "exit 4"]))
        assert fleet.wait_for_exit(interval=0.05) == ("kafka", 4)
    finally:
        fleet.stop(timeout=5)


def test_backoff_doubles_up_to_the_longest():
    policy = RestartPolicy(first=1, longest=30)
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
