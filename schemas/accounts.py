"""Accounts: registration and login input, and the user as it leaves the service."""

from marshmallow import EXCLUDE, Schema, fields, post_load, validate

from schemas.common import Email, PaginationSchema, Text, Timestamp, Trimmed, paginated

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024  # argon2 copes with more; this only keeps a request from being a memory bomb


def normalise_email(email):
    return email.strip().lower()


class RegisterSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    email = Email(required=True, validate=validate.Length(max=254))
    password = Text(
        required=True, load_only=True,
        validate=validate.Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH),
    )
    name = Text(required=True, validate=validate.Length(min=1, max=100))
    phone = Text(load_default=None, allow_none=True,
                 validate=validate.Regexp(r"^\+?[0-9 ()./-]{3,32}$", error="Not a valid phone number."))

    @post_load
    def clean(self, data, **_kwargs):
        data["email"] = normalise_email(data["email"])
        data["name"] = data["name"].strip()
        return data


class CredentialsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    email = Text(required=True, validate=validate.Length(min=1, max=254))
    password = Text(required=True, load_only=True, validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH))

    @post_load
    def clean(self, data, **_kwargs):
        data["email"] = normalise_email(data["email"])
        return data


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    role = fields.String()
    created_at = Timestamp()


class UserDeletedSchema(Schema):
    """``data`` of the ``user.deleted`` event."""

    id = fields.Integer(required=True)
    deleted_at = Timestamp(required=True)


class UserErasedSchema(Schema):
    """``data`` of the ``user.erased`` event: the account's id only, never what was erased."""

    id = fields.Integer(required=True)
    erased_at = Timestamp(required=True)


class UserQuerySchema(PaginationSchema):
    """``GET /users`` (admin): ``email`` finds accounts whose address contains it."""

    email = Trimmed(validate=validate.Length(min=1, max=254))


UserPageSchema = paginated(UserSchema)
