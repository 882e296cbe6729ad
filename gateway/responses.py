"""The API.md error body for every failure, and the response helpers routes use (``created``)."""

import json

from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from common.errors import DomainError, Unauthorized, as_domain_error

JSON = "application/json"
RETRY_AFTER_SECONDS = "1"  # a 503: a dependency that is down or slow, worth one quick retry

REASONS = {400: "bad_request", 401: "invalid_token", 403: "forbidden", 404: "not_found",
           405: "method_not_allowed", 406: "not_acceptable", 408: "request_timeout", 409: "conflict",
           413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
           429: "rate_limited", 500: "internal_error", 503: "service_unavailable"}


class BadRequest(DomainError):
    status = 400
    code = "bad_request"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class RequestTimeout(DomainError):
    status = 408
    code = "request_timeout"


# --- responses -----------------------------------------------------------------------------------

def json_response(payload, status=200, headers=None):
    return Response(json.dumps(payload), status=status, headers=headers, content_type=JSON)


def error_response(status, code, message, details=None, headers=None):
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return json_response(body, status, headers)


def created(payload, location):
    """201 with a ``Location`` header, the answer to every POST that makes something addressable."""
    return 201, {"Location": location}, payload


def flatten_messages(messages, prefix=""):
    """Marshmallow's nested messages as ``{"items.0.quantity": [...]}``: field -> list of messages."""
    if not isinstance(messages, dict):
        return {prefix or "_schema": messages if isinstance(messages, list) else [str(messages)]}
    flat = {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten_messages(value, name))
        else:
            flat[name] = value if isinstance(value, list) else [str(value)]
    return flat


def map_exception(exc):
    """``(status, error dict, extra headers)`` for anything a request can raise.

    Domain errors (a service's, or ``common.errors.as_domain_error``'s for an infrastructure failure the gateway
    met itself, such as the broker down) answer their own status and code.
    """
    if isinstance(exc, ValidationError):
        return 422, {"code": "validation_error", "message": "The request is not valid.",
                     "details": flatten_messages(exc.messages)}, {}
    if isinstance(exc, HTTPException) and exc.code and exc.code < 500:
        return exc.code, {"code": REASONS.get(exc.code, "bad_request"),
                          "message": exc.description or exc.name, "details": {}}, {}
    domain_error = as_domain_error(exc)
    if domain_error is not None:
        error = domain_error.to_dict()
        if domain_error.status == 422 and isinstance(error["details"], dict):
            error["details"] = flatten_messages(error["details"])
        return domain_error.status, error, domain_error_headers(domain_error)
    return 500, {"code": "internal_error", "message": "Internal server error.", "details": {}}, {}


def domain_error_headers(exc):
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": f'Bearer error="{exc.code}"'}
    return {"Retry-After": RETRY_AFTER_SECONDS} if exc.status == 503 else {}


def http_exception_response(exc):
    """Werkzeug's routing errors (404, 405, ...) in the API's JSON shape instead of HTML."""
    status = exc.code or 500
    headers = {}
    details = {}
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(set(exc.valid_methods or ()))
        headers["Allow"] = ", ".join(allowed)
        details["allowed_methods"] = allowed
    if getattr(exc, "new_url", None):
        headers["Location"] = exc.new_url
    message = {404: "No such resource.", 405: "Method not allowed on this resource."}.get(
        status, exc.description or exc.name)
    return error_response(status, REASONS.get(status, "http_error"), message, details, headers)
