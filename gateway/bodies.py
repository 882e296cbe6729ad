"""Reading a request inside its worker: the body bounded in size, time and nesting, then loaded with the route's
schema; the query string likewise; loaded values back to plain JSON types for RPC."""

import datetime
import decimal
import json

from marshmallow import EXCLUDE, ValidationError
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from gateway.responses import JSON, BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from schemas.common import rfc3339

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32  # far deeper than any schema; bounds the work (and the recursion) a body can cause


def schema_instance(schema):
    return schema() if isinstance(schema, type) else schema


def read_body(request):
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raw = None
    except ClientDisconnected:  # werkzeug's name for a read that failed or timed out
        raise RequestTimeout("The body did not arrive in full, in time.") from None
    except (ValueError, OSError) as exc:  # eventlet's chunked decoding of a malformed chunk
        raise BadRequest("The request body could not be read.", {"reason": str(exc)}) from None
    if raw is None or len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body may not exceed {MAX_BODY_BYTES} bytes.")
    return raw


def read_json_body(request):
    raw = read_body(request)
    if not raw.strip():
        return {}
    mimetype = request.mimetype or JSON
    if mimetype != JSON and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"Send JSON ({JSON}), not {mimetype}.")
    try:
        data = json.loads(raw)
    except RecursionError:
        data = None
    except (ValueError, UnicodeDecodeError) as exc:
        raise malformed_json(str(exc)) from None
    if data is None or nesting_depth(data) > MAX_JSON_DEPTH:
        raise malformed_json(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
    return data


def malformed_json(reason):
    return BadRequest("The request body is not valid JSON.", {"reason": reason}, code="malformed_json")


def nesting_depth(value):
    """How deep arrays and objects nest in a parsed JSON document (without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:
            pending.extend((child, depth + 1) for child in children)
    return deepest


def load_body(schema, request):
    data = read_json_body(request)
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["The request body must be a JSON object."]})
    return schema.load(data)


def load_query(schema, request):
    return schema.load(request.args.to_dict(), unknown=EXCLUDE)


def plain(value):
    """Loaded data as JSON types for RPC: money as its decimal string, datetimes as RFC 3339."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return rfc3339(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value
