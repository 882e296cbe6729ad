"""JSON Schemas of the Kafka events: ``<event_type>.json`` beside this file, one per event type.

The files are generated from the marshmallow schemas (``python -m schemas.events.generate``, see that module);
do not edit them by hand. Each refers (``$ref``, by ``$id``) to ``_defs.json``, which holds the envelope and the
data shapes the event types share. Downstream teams may copy the JSON files as they are, ``_defs.json`` with them.
``validate`` needs ``jsonschema`` (the test extra) and resolves the references from these files only; the rest is
the standard library only.
"""

import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
URN = "urn:product-order-service:events:"
DEFS = "_defs"  # a file name starting with "_" is shared definitions, not an event type


def event_types():
    return sorted(path.name[: -len(".json")] for path in HERE.glob("*.json") if not path.name.startswith("_"))


@cache
def load_schema(event_type):
    path = HERE / f"{event_type}.json"
    if event_type is None or event_type.startswith("_") or not path.is_file():
        raise KeyError(f"no JSON Schema for event type {event_type!r}")
    return json.loads(path.read_text())


@cache
def _registry():
    """Every schema file, by its ``$id``: references resolve to these and never to the network."""
    from referencing import Registry, Resource

    resources = [Resource.from_contents(json.loads(path.read_text())) for path in sorted(HERE.glob("*.json"))]
    return resources @ Registry()


def validate(envelope):
    """Raise ``jsonschema.ValidationError`` (or ``KeyError`` for an unknown type) unless ``envelope`` is valid."""
    import jsonschema

    schema = load_schema(envelope.get("event_type"))
    jsonschema.Draft202012Validator(schema, registry=_registry(),
                                    format_checker=jsonschema.FormatChecker()).validate(envelope)
