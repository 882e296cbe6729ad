"""An HTTP client for the gateway under test (nameko's ``web_session`` breaks on Werkzeug 3)."""

import pytest
import requests


class GatewayClient(requests.Session):
    def __init__(self, base_url):
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, token=None, **kwargs):
        if token:
            kwargs.setdefault("headers", {})["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 30)
        return super().request(method, self.base_url + url, *args, **kwargs)


@pytest.fixture
def http(web_config_port):
    with GatewayClient(f"http://127.0.0.1:{web_config_port}") as client:
        yield client
