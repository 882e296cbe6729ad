"""Assertions shared by the gateway tests."""


def assert_error(response, status, code=None):
    """The API.md error body, as JSON, with the status (and code) expected."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error
