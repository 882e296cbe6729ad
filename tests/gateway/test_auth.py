"""JWT tokens: only our own, unexpired HS256 tokens with every claim pass; config refuses weak secrets."""

import base64
import json
import time

import jwt
import pytest
from nameko import config
from nameko.exceptions import ConfigurationError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.auth import (
    InvalidToken,
    TokenExpired,
    bearer_token,
    decode_token,
    issue_token,
    jwt_settings,
)

SECRET = "unit-test-secret-0123456789-abcdefghij"
USER = {"id": 42, "role": "customer", "email": "ann@example.com"}


def claims(**overrides):
    now = int(time.time())
    values = {"sub": "42", "role": "customer", "iat": now, "exp": now + 600, "jti": "abc"}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_an_issued_token_decodes_to_the_users_claims():
    answer = issue_token(USER, SECRET, ttl=900)

    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 900
    decoded = decode_token(answer["access_token"], SECRET)
    assert decoded["sub"] == "42" and decoded["role"] == "customer"
    assert decoded["exp"] - decoded["iat"] == 900
    assert decoded["jti"]
    assert decode_token(issue_token(USER, SECRET, 900)["access_token"], SECRET)["jti"] != decoded["jti"]


def test_an_expired_token_is_token_expired():
    token = issue_token(USER, SECRET, ttl=60, now=time.time() - 120)["access_token"]

    with pytest.raises(TokenExpired) as raised:
        decode_token(token, SECRET)
    assert raised.value.status == 401 and raised.value.code == "token_expired"


def test_a_token_signed_with_another_key_is_invalid():
    token = issue_token(USER, "another-secret-0123456789-abcdefghijkl", 600)["access_token"]

    with pytest.raises(InvalidToken) as raised:
        decode_token(token, SECRET)
    assert raised.value.status == 401 and raised.value.code == "invalid_token"


def test_alg_none_is_refused():
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."

    with pytest.raises(InvalidToken):
        decode_token(unsigned, SECRET)


def test_another_algorithm_with_the_same_key_is_refused():
    token = jwt.encode(claims(), SECRET, algorithm="HS512")

    with pytest.raises(InvalidToken):
        decode_token(token, SECRET)


@pytest.mark.parametrize("missing", ["sub", "role", "exp", "iat", "jti"])
def test_every_claim_is_required(missing):
    token = jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256")

    with pytest.raises(InvalidToken):
        decode_token(token, SECRET)


@pytest.mark.parametrize("bad", [{"role": "superuser"}, {"sub": "abc"}])
def test_claims_must_name_a_user_id_and_a_known_role(bad):
    token = jwt.encode(claims(**bad), SECRET, algorithm="HS256")

    with pytest.raises(InvalidToken):
        decode_token(token, SECRET)


def test_a_tampered_token_is_invalid():
    header, _payload, signature = issue_token(USER, SECRET, 600)["access_token"].split(".")
    promoted = f"{header}.{b64(claims(role='admin'))}.{signature}"

    with pytest.raises(InvalidToken):
        decode_token(promoted, SECRET)
    with pytest.raises(InvalidToken):
        decode_token("not-a-jwt", SECRET)


def request_with(headers):
    return Request(EnvironBuilder(path="/auth/me", headers=headers).get_environ())


def test_the_token_is_read_from_a_bearer_authorization_header():
    assert bearer_token(request_with({"Authorization": "Bearer abc.def.ghi"})) == "abc.def.ghi"
    assert bearer_token(request_with({"Authorization": "bearer abc.def.ghi"})) == "abc.def.ghi"
    for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer "}):
        with pytest.raises(InvalidToken):
            bearer_token(request_with(headers))


@pytest.mark.parametrize("environment", ["uat", "prod"])
@pytest.mark.parametrize("secret", [None, "", "too-short-secret"])
def test_uat_and_prod_refuse_a_missing_or_short_secret(environment, secret):
    with config.patch({"ENVIRONMENT": environment, "JWT_SECRET": secret}, clear=True):
        with pytest.raises(ConfigurationError):
            jwt_settings()


def test_settings_come_from_config():
    with config.patch({"ENVIRONMENT": "prod", "JWT_SECRET": SECRET, "JWT_TTL_SECONDS": "120"},
                      clear=True):
        assert jwt_settings() == (SECRET, 120)
    with config.patch({"ENVIRONMENT": "dev", "JWT_SECRET": "short"}, clear=True):
        assert jwt_settings() == ("short", 3600)
    with config.patch({"ENVIRONMENT": "dev"}, clear=True):
        with pytest.raises(ConfigurationError):
            jwt_settings()


@pytest.mark.parametrize("secret", ["", "too-short-secret"])
def test_the_gateway_refuses_to_start_in_prod_without_a_strong_secret(
        secret, rabbit_config, web_config, container_factory):
    from gateway.service import GatewayService

    with config.patch({"ENVIRONMENT": "prod", "JWT_SECRET": secret}):
        container = container_factory(GatewayService)
        with pytest.raises(ConfigurationError):
            container.start()


@pytest.mark.parametrize("environment", ["uat", "prod", "staging"])
@pytest.mark.parametrize("secret", [
    "dev-only-jwt-secret-change-me-0123456789abcdef",  # config/dev.yml
    "test-secret-key-that-is-long-enough-for-hs256",  # tests/conftest.py
    "change-me-to-a-random-64-character-string",  # k8s/base/secret.yaml
    "CHANGEME-changeme-changeme-changeme-changeme",
])
def test_outside_dev_and_test_a_published_or_placeholder_secret_is_refused(environment, secret):
    with config.patch({"ENVIRONMENT": environment, "JWT_SECRET": secret}, clear=True):
        with pytest.raises(ConfigurationError, match="published default or a placeholder"):
            jwt_settings()


@pytest.mark.parametrize("environment", ["dev", "test"])
def test_dev_and_test_keep_their_published_secrets(environment):
    secret = "dev-only-jwt-secret-change-me-0123456789abcdef"
    with config.patch({"ENVIRONMENT": environment, "JWT_SECRET": secret}, clear=True):
        assert jwt_settings() == (secret, 3600)
