"""Shapes of the operations endpoints (``/health/ready``, ``/info``), for the OpenAPI document."""

from marshmallow import Schema, fields
from marshmallow.validate import OneOf

STATES = ["UP", "DOWN"]


class CheckSchema(Schema):
    status = fields.String(required=True, validate=OneOf(STATES))
    latency_ms = fields.Float(required=True)
    detail = fields.String()
    error = fields.String()
    lag_seconds = fields.Float(allow_none=True)  # a read replica's
    optional = fields.Boolean()  # reported, not needed for readiness (read replicas)


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=OneOf(STATES))
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckSchema), required=True)


class InfoSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(required=True)
    environment = fields.String(required=True)
    git_sha = fields.String(required=True)
