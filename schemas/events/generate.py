"""Generates ``schemas/events/*.json`` from the marshmallow schemas: ``python -m schemas.events.generate``.

``_defs.json`` holds what the event types share: the envelope and each data shape (``Order``, ``Payment``, ...),
converted by apispec's marshmallow plugin (OpenAPI 3.1 schema objects are JSON Schema 2020-12). Each
``<event_type>.json`` is that envelope (``$ref``) with its own ``event_type``, ``source`` and ``data``: the shape
the catalogue (``EVENTS``) names, plus the event's extra fields. Edit the marshmallow schemas or ``EVENTS`` and
regenerate; tests/schemas/test_event_schemas.py fails while a committed file is stale.

On top of what the marshmallow schemas say, every event states: an id (``id``, ``*_id``) is a positive integer, a
``currency`` an ISO 4217 code, money a two-place decimal string and a timestamp RFC 3339; and the fields of
``ALWAYS_PRESENT`` are required (the API answer schemas do not mark them, which would change the OpenAPI document),
those of ``NEVER_PRESENT`` forbidden.
"""

import json
import sys
from typing import NamedTuple

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields
from marshmallow.validate import Length, Range

from schemas.accounts import UserDeletedSchema, UserErasedSchema
from schemas.common import Money, Timestamp
from schemas.events import DEFS, HERE, URN
from schemas.inventory import MAX_STOCK, StockEventSchema
from schemas.notifications import NotificationSentSchema
from schemas.orders import OrderSchema
from schemas.payments import PaymentSchema
from schemas.products import CategorySchema, ProductSchema

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
MONEY_PATTERN = r"^-?\d+\.\d{2}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
CONTRACT = "Envelope of API.md 'Kafka topics'; data may gain fields (consumers ignore unknown ones)."


class EnvelopeSchema(Schema):
    """The envelope of every event, as ``common.events.make_envelope`` builds it (API.md "Kafka topics")."""

    event_id = fields.String(required=True, validate=Length(min=1),
                             metadata={"description": "Unique per event; repeats of a delivery share it."})
    event_type = fields.String(required=True)
    event_version = fields.Integer(required=True, validate=Range(min=1))
    occurred_at = Timestamp(required=True, metadata={"description": "RFC 3339 UTC time of the business change."})
    source = fields.String(required=True, metadata={"description": "The service that emitted it."})
    correlation_id = fields.String(required=True, validate=Length(min=1),
                                   metadata={"description": "The X-Request-ID of the request that caused it."})
    aggregate_id = fields.String(validate=Length(min=1), metadata={"description": "Also the Kafka key."})
    data = fields.Raw(required=True,
                      metadata={"type": "object", "description": "What happened; its shape is the event type's."})


ALWAYS_PRESENT = {
    CategorySchema: ("id", "name"),
    ProductSchema: ("id", "sku", "name", "price", "currency"),
    OrderSchema: ("id", "status"),
}
# Fields no event may carry: a card token is not for downstream consumers (docs/orders.md "Saga style").
NEVER_PRESENT = {OrderSchema: ("payment_token",)}


class Event(NamedTuple):
    source: str
    data: type[Schema]
    description: str
    extras: dict = {}


EVENTS = {
    "category.created": Event("products", CategorySchema, "A category was created; data is the category."),
    "category.updated": Event("products", CategorySchema, "A category changed; data is the category after the change."),
    "category.deleted": Event("products", CategorySchema, "A category was deleted; data is the category as it was."),
    "product.created": Event("products", ProductSchema,
                             "A product was created; data is the product plus initial_stock.",
                             {"initial_stock": fields.Integer(required=True, validate=Range(min=0, max=MAX_STOCK))}),
    "product.updated": Event("products", ProductSchema, "A product changed; data is the product after the change."),
    "product.deleted": Event("products", ProductSchema,
                             "A product was deleted; data is the product as it was plus deleted_at.",
                             {"deleted_at": Timestamp(required=True)}),
    "stock.updated": Event("inventory", StockEventSchema, "Stock levels were set."),
    "stock.reserved": Event("inventory", StockEventSchema, "Stock was reserved for an order."),
    "stock.committed": Event("inventory", StockEventSchema, "A reservation was committed (order paid)."),
    "stock.released": Event("inventory", StockEventSchema,
                            "A reservation was released (payment failed, order cancelled)."),
    "stock.low": Event("inventory", StockEventSchema,
                       "Available stock dropped below the product's low-stock threshold."),
    "order.created": Event("orders", OrderSchema, "An order was placed (PENDING_PAYMENT); data is the order."),
    "order.paid": Event("orders", OrderSchema, "An order was paid; data is the order."),
    "order.payment_failed": Event("orders", OrderSchema, "An order's payment failed; data is the order."),
    "order.cancelled": Event("orders", OrderSchema, "An order was cancelled; data is the order."),
    "order.status_changed": Event("orders", OrderSchema, "An order moved to another status; data is the order."),
    "payment.authorized": Event("payments", PaymentSchema, "The payment provider authorised an order's payment."),
    "payment.captured": Event("payments", PaymentSchema,
                              "The payment provider captured an order's authorised payment (the order was shipped)."),
    "payment.failed": Event("payments", PaymentSchema,
                            "The payment provider declined or did not answer; reason says why.",
                            {"reason": fields.String(required=True, validate=Length(min=1))}),
    "payment.refunded": Event("payments", PaymentSchema, "A paid order's payment was refunded."),
    "notification.sent": Event("notifications", NotificationSentSchema, "A notification (email, SMS) was sent."),
    "user.deleted": Event("accounts", UserDeletedSchema, "A customer account was deleted; its tokens stop working."),
    "user.erased": Event("accounts", UserErasedSchema,
                         "A customer account's personal data was erased for good; its tokens stop working. Carries "
                         "no personal data: consumers erase what they hold under the id."),
}


def event_facts(self, field, ret, **kwargs):
    """apispec attribute function: what the events state beyond the marshmallow schemas (module docstring)."""
    if isinstance(field, Money):
        return {"type": ["string", "null"] if field.allow_none else "string", "pattern": MONEY_PATTERN}
    if isinstance(field, Timestamp):
        return {"pattern": TIMESTAMP_PATTERN}
    if isinstance(field, fields.Integer) and (field.name == "id" or field.name.endswith("_id")):
        return {"minimum": max(ret.get("minimum", 1), 1)}
    if field.name == "currency":
        return {"pattern": CURRENCY_PATTERN}
    return {}


def name_of(schema):
    cls = schema if isinstance(schema, type) else type(schema)
    return cls.__name__.removesuffix("Schema")


def _converter():
    plugin = MarshmallowPlugin(schema_name_resolver=name_of)
    spec = APISpec(title="events", version="1", openapi_version="3.1.0", plugins=[plugin])
    plugin.converter.add_attribute_function(event_facts)
    return spec, plugin.converter


def _refs_to_defs(node):
    """apispec's ``#/components/schemas/X`` refs as ``#/$defs/X``."""
    if isinstance(node, dict):
        return {key: (value.replace("#/components/schemas/", "#/$defs/") if key == "$ref" else _refs_to_defs(value))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_refs_to_defs(item) for item in node]
    return node


def _open(shape):
    """Data may gain fields: no ``additionalProperties: false`` (marshmallow's default ``unknown=RAISE``)."""
    shape.pop("additionalProperties", None)
    return shape


def definitions():
    """The ``$defs`` of ``_defs.json``: the envelope, then every data shape and the shapes nested in them."""
    spec, _ = _converter()
    spec.components.schema("Envelope", schema=EnvelopeSchema)
    for schema in dict.fromkeys(event.data for event in EVENTS.values()):
        if name_of(schema) not in spec.components.schemas:
            spec.components.schema(name_of(schema), schema=schema)
    defs = _refs_to_defs(spec.to_dict()["components"]["schemas"])
    for name, shape in defs.items():
        if name != "Envelope":
            _open(shape)
    for schema, names in ALWAYS_PRESENT.items():
        shape = defs[name_of(schema)]
        shape["required"] = sorted({*shape.get("required", ()), *names})
    for schema, names in NEVER_PRESENT.items():
        defs[name_of(schema)]["not"] = {"anyOf": [{"required": [name]} for name in names]}
    return defs


def event_schema(event_type, event, converter):
    data = {"$ref": f"{URN}{DEFS}#/$defs/{name_of(event.data)}"}
    if event.extras:
        extras = _open(converter.schema2jsonschema(Schema.from_dict(event.extras)()))
        data.update({key: extras[key] for key in ("properties", "required") if key in extras})
    return {
        "$schema": DRAFT,
        "$id": f"{URN}{event_type}",
        "title": event_type,
        "description": f"{event.description} {CONTRACT}",
        "$ref": f"{URN}{DEFS}#/$defs/Envelope",
        "properties": {"event_type": {"const": event_type}, "source": {"const": event.source}, "data": data},
    }


def documents():
    """``{file name: JSON text}`` of every file this module writes."""
    _, converter = _converter()
    shared = {"$schema": DRAFT, "$id": f"{URN}{DEFS}", "title": "Shared definitions of the event schemas",
              "description": "The envelope and the data shapes the <event_type>.json schemas refer to. Generated "
                             "from the marshmallow schemas by `python -m schemas.events.generate`; do not edit.",
              "$defs": definitions()}
    schemas = {f"{DEFS}.json": shared}
    schemas.update({f"{event_type}.json": event_schema(event_type, event, converter)
                    for event_type, event in sorted(EVENTS.items())})
    return {name: json.dumps(schema, indent=2, ensure_ascii=False) + "\n" for name, schema in schemas.items()}


def main():
    wanted = documents()
    for stale in sorted({path.name for path in HERE.glob("*.json")} - set(wanted)):
        (HERE / stale).unlink()
        print(f"removed {stale}")
    for name, text in wanted.items():
        path = HERE / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
