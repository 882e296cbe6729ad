"""JSON Schemas of the Kafka events: ``<event_type>.json`` beside this file, one per event type.

Downstream teams may copy the JSON files as they are. ``validate`` needs ``jsonschema`` (the test extra); the rest
is the standard library only.
"""

import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent


def event_types():
    return sorted(path.name[: -len(".json")] for path in HERE.glob("*.json"))


@cache
def load_schema(event_type):
    path = HERE / f"{event_type}.json"
    if not path.is_file():
        raise KeyError(f"no JSON Schema for event type {event_type!r}")
    return json.loads(path.read_text())


def validate(envelope):
    """Raise ``jsonschema.ValidationError`` (or ``KeyError`` for an unknown type) unless ``envelope`` is valid."""
    import jsonschema

    schema = load_schema(envelope.get("event_type"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(envelope)
