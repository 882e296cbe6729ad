"""The OpenAPI 3 document of the gateway, generated (apispec + marshmallow) from the ``@api`` route registry.

Every route's metadata (``gateway.http.routes``) becomes an operation: its security (bearer JWT for ``user``
and ``admin`` routes, none for public ones), path and query parameters, request body, the responses it declares
and every error it can answer with the API.md error body (``schemas.gateway.ErrorSchema``), plus the headers the
gateway adds (``X-Request-ID`` always, ``X-RateLimit-*`` on limited routes, ``Retry-After``, ``Location``,
``WWW-Authenticate``). A route added to the service appears here without any change to this module.
"""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from gateway.http import routes
from gateway.ratelimit import route_class
from schemas.common import Money
from schemas.gateway import ErrorSchema

OPENAPI_VERSION = "3.0.3"
JSON = "application/json"
BEARER = "bearerAuth"
ID_MAX = 10**18 - 1  # gateway.http.IdConverter: 1 to 18 digits
MONEY_PATTERN = r"^-?[0-9]{1,10}\.[0-9]{2}$"
UNSIGNED_MONEY_PATTERN = r"^[0-9]{1,10}\.[0-9]{2}$"
NO_RPC_TAGS = {"Operations", "Documentation"}

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON (`malformed_json`).",
    401: "Missing, invalid or expired token (`invalid_token`, `token_expired`) or bad credentials "
         "(`invalid_credentials`).",
    403: "The account may not do this (`forbidden`), or a link that is not valid (`invalid_link`).",
    404: "Unknown id (`*_not_found`).",
    409: "The resource's state does not allow this (`duplicate_sku`, `insufficient_stock`, ...).",
    413: "The body is larger than 1 MiB (`payload_too_large`).",
    415: "The body is not JSON (`unsupported_media_type`).",
    422: "Invalid input (`validation_error`): `details` maps each field to its messages.",
    429: "Too many requests from this client for this kind of route (`rate_limited`).",
    503: "A service this request needs is unavailable (`service_unavailable`); retry after `Retry-After`.",
}
HEADERS = {
    "X-Request-ID": {"description": "The request's id (the client's, if acceptable): it travels with every "
                                    "RPC call, event and Kafka message the request causes.",
                     "schema": {"type": "string"}},
    "X-RateLimit-Limit": {"description": "Requests allowed in the window of this route class.",
                          "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the current window.",
                              "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Seconds until the window frees a request.",
                          "schema": {"type": "integer"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "Location": {"description": "The URL of the created resource.", "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "`Bearer error=\"<code>\"`.", "schema": {"type": "string"}},
}
REQUEST_HEADERS = {
    "X-Request-ID": {"description": "Your id for this request (1-128 of `A-Za-z0-9._:-`); echoed back.",
                     "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$"}},
    "Idempotency-Key": {"description": "Repeating a request with the same key (same user) returns the first "
                                       "result and creates nothing new.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
}
# Request headers API.md gives a route, for routes that do not declare them with ``@api(headers=...)``.
CONTRACT_HEADERS = {("POST", "/orders"): ["Idempotency-Key"]}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def money_property(self, field, ret, **kwargs):
    """Money is a two-place decimal string in answers; requests may also send a number."""
    if not isinstance(field, Money):
        return {}
    number = {"type": "number"}
    for bound in ("minimum", "maximum"):
        if bound in ret:
            number[bound] = float(ret.pop(bound))
    unsigned = number.get("minimum", -1) >= 0
    text = {"type": "string", "pattern": UNSIGNED_MONEY_PATTERN if unsigned else MONEY_PATTERN,
            "example": "19.99"}
    if ret.pop("nullable", False):
        text["nullable"] = number["nullable"] = True
    ret.pop("type", None)
    return {"anyOf": [text, number]}


def build_document(service_cls, title="Product Order Service", version="1.0.0"):
    """The OpenAPI document (a dict) of every route ``service_cls`` declares."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title=title, version=version, openapi_version=OPENAPI_VERSION, plugins=[plugin],
                   info={"description": "The public HTTP API of the Product Order Service. Errors always "
                                        "answer `{\"error\": {\"code\", \"message\", \"details\"}}`."})
    plugin.converter.add_attribute_function(money_property)
    spec.components.security_scheme(BEARER, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Error", schema=ErrorSchema)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for route in routes(service_cls):
        if route.openapi:
            spec.path(path=route.path, operations={route.method.lower(): operation(route)})
    return spec.to_dict()


def operation(route):
    op = {"operationId": route.name, "summary": route.summary, "tags": route.tags or ["Other"],
          "parameters": parameters(route), "responses": responses(route)}
    description = route.description
    if route.auth:
        op["security"] = [{BEARER: []}]
        role = "the admin role" if route.auth == "admin" else "a customer or admin token"
        description = f"Requires {role}. {description}".strip()
        op["x-required-role"] = route.auth
    else:
        op["security"] = []
    if description:
        op["description"] = description
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": route.body}}}
    return op


def parameters(route):
    params = [{"in": "path", "name": name, "required": True,
               "schema": {"type": "integer", "minimum": 1, "maximum": ID_MAX} if kind == "integer"
               else {"type": "string"}} for name, kind in route.path_params]
    if route.query is not None:
        params.append({"in": "query", "schema": route.query})
    names = ["X-Request-ID", *route.headers, *CONTRACT_HEADERS.get((route.method, route.path), [])]
    for name in dict.fromkeys(names):
        header = REQUEST_HEADERS.get(name, {"schema": {"type": "string"}})
        params.append({"in": "header", "name": name, "required": False, **header})
    return params


def error_statuses(route):
    statuses = set()
    if route.body is not None:
        statuses |= {400, 413, 415, 422}
    if route.query is not None:
        statuses.add(422)
    if route.auth:
        statuses |= {401, 403}
    if route.path_params:
        statuses.add(404)
    if route.method != "GET":
        statuses.add(409)
    if route_class(route):
        statuses.add(429)
    if not NO_RPC_TAGS & set(route.tags):
        statuses.add(503)
    return statuses


def responses(route):
    """Every status the route answers (no catch-all ``default``: a conformance check must see the real list).

    A route's ``responses`` may add an error status (``401: None``) or remove a derived one it never answers
    (``409: False``).
    """
    declared = dict(route.responses) or {200: "OK"}
    never = {status for status, body in declared.items() if body is False}
    return {str(status): response(route, status, declared.get(status))
            for status in sorted({*declared, *error_statuses(route)} - never)}


def response(route, status, body):
    answer = {"description": ERROR_DESCRIPTIONS.get(status, "OK"), "headers": headers(route, status)}
    if status >= 400 and body is None:
        answer["content"] = {JSON: {"schema": "Error"}}
    elif isinstance(body, str) and "/" in body:
        answer["content"] = {body: {"schema": media_schema(body)}}
    elif body is not None and not isinstance(body, str):
        answer["content"] = {JSON: {"schema": body}}
    if status == 201:
        answer["description"] = "Created."
    elif status == 204:
        answer["description"] = "Done; no content."
    return answer


def media_schema(media_type):
    if media_type == JSON or media_type.endswith("+json"):
        return {"type": "object"}
    if media_type.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def headers(route, status):
    names = ["X-Request-ID"]
    if route_class(route):
        names += RATE_LIMIT_HEADERS
    if status in (429, 503):
        names.append("Retry-After")
    if status == 201:
        names.append("Location")
    if status == 401:
        names.append("WWW-Authenticate")
    answer = {name: {"$ref": f"#/components/headers/{name}"} for name in names}
    answer["X-Request-ID"] = {**HEADERS["X-Request-ID"], "required": True}
    return answer
