"""Domain errors that cross RPC with their type, code and details intact.

Registered with ``deserialize_to_instance`` so an RPC caller (the gateway, another service, ``nameko shell``)
gets the same exception class back, not a bare ``RemoteError``, and can map it to an HTTP status.

``as_domain_error(exc)`` is the one mapping of everything else: an infrastructure failure (a database, the broker
or a service that is down or slow) stands for ``DependencyUnavailable``; anything else is a bug (``None``).
``common.rpc`` applies it before a service's error goes back to its caller, the gateway to what it raises itself.
"""

import json
import socket

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError as BrokerError
from nameko.exceptions import ReplyQueueExpiredWithPendingReplies, RpcTimeout, UnknownService, deserialize_to_instance
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


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


UNAVAILABLE_MESSAGE = "A service this request needs is unavailable; try again shortly."
# Failures of what a request depends on, not of the request: the same call may succeed later.
INFRASTRUCTURE_ERRORS = (
    OperationalError, DisconnectionError, PoolTimeout,  # SQLAlchemy: the database is down, gone or saturated
    BrokerError, AmqpConnectionError,                   # kombu / py-amqp: the broker
    RpcTimeout, UnknownService, ReplyQueueExpiredWithPendingReplies,  # nameko's own RPC client
    ConnectionError, socket.timeout,
)


def as_domain_error(exc):
    """The domain error ``exc`` stands for: itself, ``DependencyUnavailable`` for an infrastructure failure
    (its message names nothing internal), or ``None`` for anything else."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return DependencyUnavailable(UNAVAILABLE_MESSAGE)
    return None
