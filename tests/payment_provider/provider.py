"""The real payment provider as a subprocess on a free port, which a test may kill (-9) and start again."""

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answering(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class ProviderProcess:
    def __init__(self, tmp_dir):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db_path = tmp_dir / "payment_provider.db"
        self.log_path = tmp_dir / "payment_provider.log"
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "payment_provider.server", "--address", self.address,
                 "--db", str(self.db_path)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: answering(self.port) or self.process.poll() is not None, timeout=30,
                   message="the payment provider to listen")
        if self.process.poll() is not None:
            raise RuntimeError(f"payment provider exited: {self.log_path.read_text()}")

    def kill(self):
        """SIGKILL: no goodbye to open connections, nothing flushed beyond what SQLite committed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@pytest.fixture
def payment_provider(tmp_path):
    provider = ProviderProcess(tmp_path)
    provider.start()
    yield provider
    provider.stop()
