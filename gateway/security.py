"""The edge policy every gateway response passes through: CORS and the security headers.

CORS: only origins listed in ``CORS_ALLOWED_ORIGINS`` (a list or comma-separated; ``*`` allows any origin) get
``Access-Control-*`` headers; a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here,
before routing, with 204. Tokens travel in the ``Authorization`` header, never in cookies, so credentials are
never allowed. Every response gets the headers below; a response may set its own ``Content-Security-Policy``
(``/docs`` does). Responses to a request that carried a token are ``Cache-Control: no-store``.
"""

from nameko import config
from werkzeug.wrappers import Response

PREFLIGHT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset", "Location")
DEFAULT_MAX_AGE = 600
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ONE_YEAR = 365 * 24 * 3600


def as_list(value):
    if not value:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(item).strip() for item in value if str(item).strip()]


def is_preflight(request):
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


class EdgePolicy:
    """Built once per web server from config (see ``from_config``)."""

    def __init__(self, allowed_origins=(), max_age=DEFAULT_MAX_AGE, hsts_seconds=0):
        origins = [origin.rstrip("/") for origin in allowed_origins]
        self.any_origin = "*" in origins
        self.allowed_origins = frozenset(origins) - {"*"}
        self.max_age = int(max_age)
        self.hsts_seconds = int(hsts_seconds)

    @classmethod
    def from_config(cls):
        environment = str(config.get("ENVIRONMENT") or "dev").lower()
        hsts = config.get("HSTS_MAX_AGE")
        if hsts in (None, ""):
            hsts = ONE_YEAR if environment == "prod" else 0
        return cls(as_list(config.get("CORS_ALLOWED_ORIGINS")),
                   config.get("CORS_MAX_AGE") or DEFAULT_MAX_AGE, hsts)

    @property
    def cors_enabled(self):
        return self.any_origin or bool(self.allowed_origins)

    def origin_allowed(self, origin):
        return bool(origin) and (self.any_origin or origin in self.allowed_origins)

    def preflight(self, request, url_adapter):
        """The answer to a CORS preflight; no ``Access-Control-*`` headers for an origin not allowed."""
        response = Response(status=204)
        origin = request.headers.get("Origin")
        if not self.origin_allowed(origin):
            return response
        allowed = [method for method in PREFLIGHT_METHODS
                   if method in url_adapter.allowed_methods(request.path)]
        response.headers.update({
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(allowed),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": str(self.max_age),
        })
        return response

    def finish(self, request, response):
        """CORS and security headers on a response about to leave."""
        headers = response.headers
        origin = request.headers.get("Origin")
        if self.cors_enabled:
            headers.add("Vary", "Origin")
        if self.origin_allowed(origin):
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        headers.setdefault("Content-Security-Policy", API_CSP)
        if self.hsts_seconds > 0:
            headers["Strict-Transport-Security"] = f"max-age={self.hsts_seconds}; includeSubDomains"
        if "Authorization" in request.headers and "no-store" not in headers.get("Cache-Control", ""):
            headers["Cache-Control"] = "no-store"
        return response
