"""Loading what an RPC caller sent: the one rule for ids, and marshmallow errors as ``ValidationFailed``.

Services validate again what the gateway already checked, because RPC callers include other services and
``nameko shell``. An id is a positive integer, sent as a number or as a string of digits (event payloads and shell
users send strings): every service applies that one rule through ``load_id``.
"""

from marshmallow import ValidationError

from common.errors import ValidationFailed

MAX_ID = 2**63 - 1
INVALID = "The request is not valid."


def load(schema, data):
    try:
        return schema.load({} if data is None else data)
    except ValidationError as error:
        raise ValidationFailed(INVALID, details=error.messages) from None


def load_id(value, field="id"):
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID)):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise ValidationFailed(f"Invalid {field}.", details={field: ["Must be a positive integer."]})
    return value


def load_ids(values, field, most):
    """A list of ids, repeats dropped, first occurrence kept."""
    if not isinstance(values, list | tuple) or len(values) > most:
        raise ValidationFailed(INVALID, details={field: [f"A list of at most {most} ids."]})
    return list(dict.fromkeys(load_id(value, field) for value in values))
