"""Domain errors that cross RPC with their type, code and details intact.

Registered with ``deserialize_to_instance`` so an RPC caller (the gateway, another service, ``nameko shell``)
gets the same exception class back, not a bare ``RemoteError``, and can map it to an HTTP status.
"""

import json

from nameko.exceptions import deserialize_to_instance


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message="", details=None, code=None):
        if isinstance(details, str):
            details = json.loads(details)  # came over RPC, see below
        details = details or {}
        # Nameko stringifies every non-string value inside exception args; JSON keeps ints and lists intact.
        super().__init__(message, json.dumps(details, default=str), code or self.code)
        self.message = message
        self.details = details
        self.code = code or self.code

    def __str__(self):
        return self.message

    def to_dict(self):
        return {"code": self.code, "message": self.message, "details": self.details}


@deserialize_to_instance
class NotFound(DomainError):
    status = 404
    code = "not_found"


@deserialize_to_instance
class Conflict(DomainError):
    status = 409
    code = "conflict"


@deserialize_to_instance
class ValidationFailed(DomainError):
    status = 422
    code = "validation_error"


@deserialize_to_instance
class Forbidden(DomainError):
    status = 403
    code = "forbidden"


@deserialize_to_instance
class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


@deserialize_to_instance
class DependencyUnavailable(DomainError):
    status = 503
    code = "service_unavailable"
