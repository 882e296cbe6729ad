"""Register, token, /auth/me and roles through the gateway, against the real accounts service (SQLite and MariaDB)."""

import jwt
import pytest
from nameko.standalone.rpc import ServiceRpcClient

from gateway.service import GatewayService
from services.accounts.service import AccountsService
from tests.gateway.helpers import assert_error


@pytest.fixture
def accounts(service_config, container_factory):
    container = container_factory(AccountsService)
    container.start()
    return container


@pytest.fixture
def gateway(service_config, web_config, accounts, container_factory):
    container = container_factory(GatewayService)
    container.start()
    return container


def register(http, email="ann@example.com", password="correct-horse", name="Ann"):
    return http.post("/auth/register", json={"email": email, "password": password, "name": name})


def token_for(http, email, password):
    response = http.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_a_customer_registers_gets_a_token_and_sees_their_account(gateway, http):
    registered = register(http)
    assert registered.status_code == 201, registered.text
    user = registered.json()
    assert user["email"] == "ann@example.com" and user["role"] == "customer"
    assert "password" not in user

    answer = http.post("/auth/token", json={"email": "ANN@example.com", "password": "correct-horse"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(user["id"]) and claims["role"] == "customer"

    me = http.get("/auth/me", token=body["access_token"])
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


def test_registration_errors(gateway, http):
    assert register(http).status_code == 201
    assert_error(register(http, email="Ann@Example.com"), 409, "email_taken")
    error = assert_error(http.post("/auth/register", json={"email": "nope", "password": "short"}),
                         422, "validation_error")
    assert {"email", "password", "name"} <= set(error["details"])


def test_wrong_credentials_are_401(gateway, http):
    register(http)
    for body in ({"email": "ann@example.com", "password": "wrong-password"},
                 {"email": "nobody@example.com", "password": "correct-horse"}):
        response = http.post("/auth/token", json=body)
        assert_error(response, 401, "invalid_credentials")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_protected_routes_need_a_valid_token(gateway, http):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}):
        response = http.get("/auth/me", headers=headers)
        assert_error(response, 401, "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    expired = jwt.encode({"sub": "1", "role": "admin", "iat": 1, "exp": 2, "jti": "x"},
                         "test-secret-key-that-is-long-enough-for-hs256", algorithm="HS256")
    assert_error(http.get("/auth/me", token=expired), 401, "token_expired")


def test_admin_routes_are_403_for_customers_and_open_to_the_admin(gateway, http):
    register(http)
    customer = token_for(http, "ann@example.com", "correct-horse")
    admin = token_for(http, "admin@example.com", "admin-password-1")

    assert_error(http.post("/categories", json={"name": "Tea"}, token=customer), 403, "forbidden")
    assert_error(http.put("/products/1/stock", json={"on_hand": 1}, token=customer), 403)
    assert http.get("/auth/me", token=admin).json()["role"] == "admin"
    # past auth, the admin reaches the products service, which is not running here
    assert_error(http.post("/categories", json={"name": "Tea"}, token=admin), 503,
                 "service_unavailable")


def test_the_token_of_a_deleted_account_is_refused(gateway, http):
    user = register(http).json()
    token = token_for(http, "ann@example.com", "correct-horse")

    with ServiceRpcClient("accounts") as accounts:
        accounts.delete_user(user["id"])

    assert_error(http.get("/auth/me", token=token), 401, "invalid_token")


def test_a_known_account_is_checked_from_the_cache_not_by_rpc(gateway, accounts, http):
    register(http)
    token = token_for(http, "ann@example.com", "correct-horse")
    assert http.get("/auth/me", token=token).status_code == 200

    accounts.stop()

    assert http.get("/auth/me", token=token).json()["email"] == "ann@example.com"
