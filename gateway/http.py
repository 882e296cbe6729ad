"""The gateway's HTTP entrypoint: JSON in, JSON out, the API.md error body for every failure, ``X-Request-ID``.

A route is declared once with everything a client (and the OpenAPI generator) needs to know about it::

    @api("POST", "/products", auth="admin", body=ProductCreateSchema, responses={201: ProductSchema},
         summary="Create a product", tags=["Products"])
    def create_product(self, request, body, user):
        product = self.products_rpc.create_product(body)
        return created(product, f"/products/{product['id']}")

Before the method runs, inside its worker, the body is parsed and loaded with ``body`` (400 ``malformed_json``,
422 ``validation_error``), the query string with ``query``, and the bearer token checked against ``auth``
(``"user"`` or ``"admin"``; 401/403). The method gets the path values plus ``body``, ``query`` and ``user`` (the
caller's account) for what the route declares, and returns a JSON-able payload (200), ``(status, payload)``,
``(status, headers, payload)``, ``None`` (204) or a werkzeug ``Response`` (served as is, e.g. Prometheus text).
``routes(service_cls)`` lists every declared route as a ``RouteSpec``.
"""

import functools
import inspect
import logging
import re
import uuid
from dataclasses import dataclass, field

from eventlet.event import Event
from marshmallow import Schema, ValidationError
from nameko import config
from nameko.extensions import register_entrypoint
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from common.correlation import CORRELATION_KEY, REQUEST_ID_HEADER, acceptable_request_id
from common.errors import DomainError, Unauthorized
from gateway.auth import Auth, bearer_token, decode_token
from gateway.bodies import MAX_BODY_BYTES, load_body, load_query, plain, schema_instance
from gateway.freshness import CLIENT_ENV, ClientPositions
from gateway.protocol import MAX_URL_BYTES, ApiProtocol
from gateway.ratelimit import EXEMPT_TAGS, RateLimiter, client_address, route_class
from gateway.responses import error_response, http_exception_response, json_response, map_exception
from gateway.security import EdgePolicy, is_preflight

log = logging.getLogger(__name__)

REQUEST_ID_ENV = "pos.request_id"
ROUTE_ENV = "pos.route"
DEFAULT_SOCKET_TIMEOUT_SECONDS = 30
AUTH_LEVELS = (None, "user", "admin")
# --- route declarations --------------------------------------------------------------------------

_PATH_PARAM = re.compile(r"<(?:(?P<converter>[a-zA-Z_]+)(?:\([^>]*\))?:)?(?P<name>\w+)>")


@dataclass
class RouteSpec:
    """What a route promises; the OpenAPI document is generated from these."""

    method: str
    url: str
    name: str = ""
    auth: str | None = None
    body: type | Schema | None = None
    query: type | Schema | None = None
    responses: dict = field(default_factory=dict)
    summary: str = ""
    description: str = ""
    tags: list = field(default_factory=list)
    rate_limit: str | bool | None = None  # a RATE_LIMITS class; None: derived; False: never limited
    headers: list = field(default_factory=list)  # request headers the route reads (OpenAPI)
    openapi: bool = True  # listed in the OpenAPI document

    @property
    def path(self):
        """The URL as an OpenAPI path template: ``/products/{product_id}``."""
        return _PATH_PARAM.sub(lambda m: "{" + m.group("name") + "}", self.url)

    @property
    def path_params(self):
        """``[(name, "integer" | "string")]`` from the werkzeug converters."""
        return [(m.group("name"), "integer" if m.group("converter") == "int" else "string")
                for m in _PATH_PARAM.finditer(self.url)]


def routes(service_cls):
    """Every ``@api`` route a service class declares (mixins included), in URL order."""
    specs = [member.api_spec for _, member in inspect.getmembers(service_cls)
             if hasattr(member, "api_spec")]
    return sorted(specs, key=lambda spec: (spec.path, spec.method))


class IdConverter(IntegerConverter):
    """``<int:...>`` matches database ids only (1 to 18 digits); anything else is an unknown URL (404).

    The range lives in the regex: a converter that rejects a match by raising makes werkzeug's router answer
    405 instead of 404 when another method shares the URL.
    """

    regex = r"[1-9]\d{0,17}"


class ApiServer(WebServer):
    """The gateway's own web server (a separate shared extension from nameko's plain ``@http``).

    It holds the edge policy (CORS, security headers: gateway/security.py) and the rate limiter
    (gateway/ratelimit.py), both applied before a request takes a worker.
    """

    def setup(self):
        super().setup()
        self.edge = EdgePolicy.from_config()
        self.rate_limiter = RateLimiter.from_config()
        self.trusted_proxies = int(config.get("TRUSTED_PROXY_COUNT") or 0)
        self.jwt_secret = config.get("JWT_SECRET")
        self.socket_timeout = float(config.get("HTTP_SOCKET_TIMEOUT_SECONDS") or DEFAULT_SOCKET_TIMEOUT_SECONDS)
        self.positions = ClientPositions.from_config()

    def stop(self):
        if self.positions is not None:
            self.positions.close()
        super().stop()

    def rate_limit_client(self, request):
        """``user:<id>`` for a request with a valid token (checked without RPC), else ``ip:<address>``."""
        if self.jwt_secret and "Authorization" in request.headers:
            try:
                return "user:" + str(decode_token(bearer_token(request), self.jwt_secret)["sub"])
            except Unauthorized:
                pass
        return "ip:" + client_address(request, self.trusted_proxies)

    def get_wsgi_app(self):
        return ApiApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=ApiProtocol, debug=False):
        server = super().get_wsgi_server(sock, wsgi_app, protocol=protocol, debug=debug)
        server.socket_timeout = self.socket_timeout  # a client that stops sending is cut off, not waited for
        server.url_length_limit = MAX_URL_BYTES
        return server

    def make_url_map(self):
        url_map = Map(converters={"int": IdConverter})
        for provider in self._providers:
            rule = provider.get_url_rule()
            rule.endpoint = provider
            url_map.add(rule)
        return url_map

    def context_data_from_headers(self, request):
        data = {CORRELATION_KEY: request.environ[REQUEST_ID_ENV]}
        if self.positions is not None:
            self.positions.before_worker(request, data)
        return data


class ApiApp(WsgiApp):
    def __call__(self, environ, start_response):
        request_id = environ.get("HTTP_X_REQUEST_ID")
        if not acceptable_request_id(request_id):
            request_id = str(uuid.uuid4())
        environ[REQUEST_ID_ENV] = request_id
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            environ["wsgi.input_terminated"] = True  # eventlet ends the chunked stream; werkzeug bounds it
        request = Request(environ, shallow=True)
        request.max_content_length = MAX_BODY_BYTES + 1  # werkzeug cuts a chunked body at the bound silently
        response = self.respond(request)
        response.headers[REQUEST_ID_HEADER] = request_id
        self.server.edge.finish(request, response)
        return response(environ, start_response)

    def respond(self, request):
        try:
            adapter = self.url_map.bind_to_environ(request.environ)
            if is_preflight(request):
                return self.server.edge.preflight(request, adapter)
            provider, values = adapter.match()
            request.path_values = values
            return provider.handle_request(request)
        except HTTPException as exc:
            return http_exception_response(exc)
        except Exception:
            log.exception("request %s failed outside its worker", request.environ[REQUEST_ID_ENV])
            return error_response(500, "internal_error", "Internal server error.")


class Api(HttpRequestHandler):
    server = ApiServer()

    def __init__(self, method, url, spec=None, **kwargs):
        self.spec = spec or RouteSpec(method, url)
        super().__init__(method, url, **kwargs)

    def get_url_rule(self):
        return Rule(self.url, methods=[self.method])

    def setup(self):
        super().setup()
        self.rate_class = route_class(self.spec)

    # common.tracing.Tracing: the worker's span is the route (its template, never the URL: ids, queries), its
    # status and the caller's role; it continues the caller's ``traceparent``.
    def trace_name(self, worker_ctx):
        return f"{self.method} {self.spec.path}"

    def trace_carrier(self, worker_ctx):
        return worker_ctx.args[0].headers

    def trace_quiet(self, worker_ctx):
        """Probes, scrapes and the docs (the rate limiter's exempt tags) would bury the shop's traces."""
        return bool(EXEMPT_TAGS & set(self.spec.tags))

    def trace_result(self, span, response):
        status = getattr(response, "status_code", None)
        span.set_attributes({"http.request.method": self.method, "http.route": self.spec.path})
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, str(status)))

    def handle_request(self, request):
        request.shallow = False
        request.environ[ROUTE_ENV] = self
        client = self.server.rate_limit_client(request)
        request.environ[CLIENT_ENV] = client
        quota = self.server.rate_limiter.hit(self.rate_class, client)
        if quota is not None and not quota.allowed:
            response = error_response(429, "rate_limited", "Too many requests; slow down and retry later.",
                                      {"limit": quota.limit, "retry_after": max(quota.reset_in, 1)})
        else:
            response = self.run_worker(request)
        if quota is not None:
            response.headers.update(quota.headers())
        return response

    def run_worker(self, request):
        try:
            context_data = self.server.context_data_from_headers(request)
            event = Event()
            self.container.spawn_worker(
                self, (request,), request.path_values, context_data=context_data,
                handle_result=functools.partial(self.handle_result, event))
            return event.wait()
        except Exception as exc:
            return self.response_from_exception(exc, request)

    def handle_result(self, event, worker_ctx, result, exc_info):
        """The response is made here, in the worker: the container's providers (metrics) get it as the result,
        so they count the status the client was answered instead of deriving it again."""
        request = worker_ctx.args[0]
        try:
            response = self.response_from_result(result) if exc_info is None else \
                self.response_from_exception(exc_info[1], request)
        except Exception as exc:  # a payload that is not JSON-able
            response = self.response_from_exception(exc, request)
        if self.server.positions is not None:  # before the response leaves: the client's next request needs it
            self.server.positions.after_worker(request, worker_ctx.data)
        event.send(response)
        return response, exc_info

    def prepare(self, service, request):
        """Auth, body and query for the worker; raises what ``map_exception`` turns into 4xx."""
        kwargs = {}
        if self.spec.auth:
            kwargs["user"] = self.authenticator(service).authenticate(request, self.spec.auth)
            trace.get_current_span().set_attribute("enduser.role", str(kwargs["user"].get("role")))
        if self.spec.body is not None:
            kwargs["body"] = plain(load_body(schema_instance(self.spec.body), request))
        if self.spec.query is not None:
            kwargs["query"] = plain(load_query(schema_instance(self.spec.query), request))
        return kwargs

    def authenticator(self, service):
        for provider in self.container.dependencies:
            if isinstance(provider, Auth):
                return getattr(service, provider.attr_name)
        raise LookupError(f"route {self.spec.name} needs auth but the service declares no Auth()")

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, headers, payload = 200, {}, result
        if isinstance(result, tuple):
            status, headers, payload = result if len(result) == 3 else (result[0], {}, result[1])
        if payload is None and status in (200, 204):
            return Response(status=204)
        return json_response(payload, status, headers)

    def response_from_exception(self, exc, request=None):
        status, error, headers = map_exception(exc)
        request_id = request.environ.get(REQUEST_ID_ENV) if request is not None else None
        if status == 500:
            log.error("%s %s failed (request %s): %r", self.method, self.url, request_id, exc,
                      exc_info=(type(exc), exc, exc.__traceback__))
        elif status >= 500:
            log.warning("%s %s: a dependency is unavailable (request %s): %r", self.method,
                        self.url, request_id, exc)
        return json_response({"error": error}, status, headers)


def _accepted_names(fn):
    params = inspect.signature(fn).parameters.values()
    if any(param.kind is param.VAR_KEYWORD for param in params):
        return {"body", "query", "user"}
    return {param.name for param in params}


def api(method, url, *, auth=None, body=None, query=None, responses=None, summary="",
        description="", tags=(), rate_limit=None, headers=(), openapi=True, **kwargs):
    """Declare an HTTP route on a gateway method (see the module docstring).

    ``rate_limit`` names the ``RATE_LIMITS`` class (``False``: never limited; default: ``ratelimit.route_class``),
    ``headers`` the request headers the route reads (``["Idempotency-Key"]``) and ``openapi=False`` keeps the
    route out of the document (static assets). ``responses`` maps a status to a schema (JSON), ``None`` (no body;
    the error body for a 4xx/5xx) or a media type string (``"application/pdf"``).
    """
    if auth not in AUTH_LEVELS:
        raise ValueError(f"auth must be one of {AUTH_LEVELS}, not {auth!r}")

    def decorate(fn):
        spec = RouteSpec(method.upper(), url, fn.__name__, auth, body, query, dict(responses or {}),
                         summary or (fn.__doc__ or "").strip().split("\n")[0],
                         description, list(tags), rate_limit, list(headers), openapi)

        wanted = _accepted_names(fn)

        @functools.wraps(fn)
        def handler(self, request, **path):
            extra = request.environ[ROUTE_ENV].prepare(self, request)
            return fn(self, request, **path, **{k: v for k, v in extra.items() if k in wanted})

        handler.api_spec = spec
        register_entrypoint(handler, Api(spec.method, url, spec=spec,
                                         expected_exceptions=(DomainError, ValidationError),
                                         **kwargs))
        return handler

    return decorate
