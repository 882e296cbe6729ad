"""Re-encrypt personal data under the first key of DATA_ENCRYPTION_KEYS (docs/operations.md, "Data encryption keys").

    python -m scripts.rotate_keys --config config/prod.yml [accounts orders notifications webhooks] [--batch 500]
    python -m scripts.rotate_keys --generate-key

Walks every encrypted column of each service's tables in primary-key order, a batch per short transaction, and
rewrites only the values that are not under the current key. Safe while the system runs: each value is replaced
only if it is still the one read (a row a service rewrote meanwhile is already under the current key), and nothing
is held locked between batches. Resumable: the last key done per table is kept in ``--state`` (a JSON file) and a
rerun for the same current key starts there; a rerun without it rescans and rewrites nothing already current.
"""

import argparse
import json
import sys
from importlib import import_module
from pathlib import Path

from nameko import config
from sqlalchemy import Text, and_, column, func, select, table

from common.crypto import Keyring, encrypted_columns, generate_key
from common.db import make_engine

SERVICES = ("accounts", "orders", "notifications", "webhooks")
DEFAULT_STATE = "var/rotate-keys-state.json"


def rotate(engine, metadata, keyring, service, batch=500, state=None, progress=None):
    """Re-encrypt every value of ``metadata``'s encrypted columns not under the current key; how many rows changed."""
    state = state if state is not None else {}
    changed = 0
    for table_name, names, primary_key in encrypted_columns(metadata):
        tbl = table(table_name, column(primary_key), *(column(name, Text) for name in names))
        place = f"{service}.{table_name}"
        bar = (progress or _Quiet)(total=_count(engine, tbl), desc=place, unit="row")
        last = state.get(place)
        while True:
            with engine.begin() as connection:
                query = select(tbl).order_by(tbl.c[primary_key]).limit(batch)
                rows = connection.execute(query if last is None else query.where(tbl.c[primary_key] > last)).all()
                for row in rows:
                    changed += _reencrypt(connection, tbl, primary_key, names, row._mapping, keyring)
            if not rows:
                break
            last = rows[-1]._mapping[primary_key]
            state[place] = last
            bar.update(len(rows))
            if len(rows) < batch:
                break
        bar.close()
    return changed


def _reencrypt(connection, tbl, primary_key, names, row, keyring):
    stale = {name: row[name] for name in names if row[name] is not None and not keyring.is_current(row[name])}
    if not stale:
        return 0
    fresh = {name: keyring.encrypt(keyring.decrypt(value, f"{tbl.name}.{name}"), f"{tbl.name}.{name}")
             for name, value in stale.items()}
    still_the_same = and_(tbl.c[primary_key] == row[primary_key],
                          *(tbl.c[name] == value for name, value in stale.items()))
    return connection.execute(tbl.update().where(still_the_same).values(**fresh)).rowcount


def _count(engine, tbl):
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(tbl))


class _Quiet:
    def __init__(self, **_):
        pass

    def update(self, _):
        pass

    def close(self):
        pass


def progress_bar():
    try:
        from tqdm import tqdm
    except ImportError:  # the runtime image has no tqdm: a line per batch instead
        return _Lines
    return tqdm


class _Lines(_Quiet):
    def __init__(self, total, desc, unit):
        self.total, self.desc, self.done = total, desc, 0

    def update(self, count):
        self.done += count
        print(f"{self.desc}: {self.done}/{self.total}", file=sys.stderr)


def load_state(path, keyring):
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return saved.get("tables", {}) if saved.get("key_id") == keyring.current_id else {}


def save_state(path, keyring, tables):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"key_id": keyring.current_id, "tables": tables}))


def main(argv=None):
    from nameko.cli.utils.config import setup_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=argparse.FileType())
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--state", default=DEFAULT_STATE)
    parser.add_argument("--generate-key", action="store_true", help="print a new key and exit")
    parser.add_argument("services", nargs="*", default=None)
    args = parser.parse_args(argv)
    if args.generate_key:
        print(generate_key())
        return 0
    if args.config is None:
        parser.error("--config is required")
    setup_config(args.config)
    keyring = Keyring.from_config()
    for service in args.services or [s for s in SERVICES if f"{s}:Base" in config.get("DB_URIS", {})]:
        tables = load_state(args.state, keyring)
        engine = make_engine(config["DB_URIS"][f"{service}:Base"])
        try:
            changed = rotate(engine, import_module(f"services.{service}.models").Base.metadata, keyring, service,
                             args.batch, tables, progress_bar())
        finally:
            save_state(args.state, keyring, tables)
            engine.dispose()
        print(f"{service}: {changed} rows re-encrypted under key {keyring.current_id}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
