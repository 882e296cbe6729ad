"""py-spy on a running service while wrk loads it: where its CPU goes, by library and by function."""

import collections
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PY_SPY = str(Path(sys.executable).parent / "py-spy")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*)(?::\d+)?\)$")

# first match wins; checked against the frame's file path
CATEGORIES = [
    ("AMQP client (kombu, py-amqp)", ("/kombu/", "/amqp/")),
    ("SQLAlchemy", ("/sqlalchemy/",)),
    ("PyMySQL driver", ("/pymysql/",)),
    ("Redis client", ("/redis/",)),
    ("marshmallow", ("/marshmallow/",)),
    ("JSON", ("/json/",)),
    ("logging", ("/logging/", "common/logging.py", "pythonjsonlogger")),
    ("Prometheus metrics", ("/prometheus_client/", "common/metrics.py")),
    ("werkzeug / HTTP", ("/werkzeug/", "eventlet/wsgi.py")),
    ("confluent-kafka", ("confluent_kafka",)),
    (HUB := "eventlet hub, stdlib", ("/eventlet/",)),
    ("nameko", ("/nameko/",)),
    ("project code", ("/common/", "/services/", "/gateway/", "/bridge/", "/bench/")),
]
IDLE_LEAVES = ("Hub.do_poll", "Hub.wait")


@dataclass
class Profile:
    process: str
    samples: int = 0
    idle: int = 0
    by_category: dict = field(default_factory=dict)
    top_self: list = field(default_factory=list)
    error: str = ""


def start(pid, seconds, out_path, rate=100):
    argv = [PY_SPY, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
            "--format", "raw", "--nonblocking", "--output", str(out_path)]
    Path(out_path).unlink(missing_ok=True)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process_name, recorder, out_path):
    _out, err = recorder.communicate(timeout=120)
    path = Path(out_path)
    if recorder.returncode != 0 or not path.exists():
        return Profile(process_name, error=(err or "py-spy failed").strip().splitlines()[-1][:200])
    return summarise(process_name, path.read_text())


def summarise(process_name, raw):
    """Collapsed stacks -> share of samples per library (see ``owner_of``) and the hottest leaf functions."""
    total, idle, categories, leaves = 0, 0, collections.Counter(), collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        count = int(count)
        frames = [FRAME.match(part) for part in stack.split(";")]
        frames = [match for match in frames if match]
        if not frames:
            continue
        if frames[-1]["func"] in IDLE_LEAVES:  # the hub waiting in epoll: py-spy counts it as active
            idle += count
            continue
        total += count
        categories[owner_of(frames)] += count
        leaf = frames[-1]
        leaves[f"{leaf['func']} ({short_path(leaf['file'])})"] += count
    return Profile(process_name, total, idle,
                   {name: 100.0 * n / total for name, n in categories.most_common()} if total else {},
                   [(name, 100.0 * n / total) for name, n in leaves.most_common(10)] if total else [])


def owner_of(frames):
    """The library a sample's time belongs to: the innermost frame in a named library (eventlet's socket and hub
    code counts for whoever called it, and only when nobody did, for the hub)."""
    for match in reversed(frames):
        name = category_of(match["file"])
        if name is not None and name != HUB:
            return name
    return HUB


def category_of(path):
    path = "/" + path.lstrip("/")  # py-spy names files relative to sys.path
    for name, needles in CATEGORIES:
        if any(needle in path for needle in needles):
            return name
    return None


def short_path(path):
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
