"""Which URLs a delivery may call: checked after DNS resolution, on every attempt (no services needed)."""

import hmac

import pytest
from nameko import config

from services.webhooks.courier import Refused, allowed_address, resolve, retry_delay, signature, without_query


@pytest.mark.parametrize("url", [
    "http://93.184.215.14/hook",  # public, but not https
    "https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]/hook", "https://10.1.2.3/",
    "https://172.16.0.1/", "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:127.0.0.1]/", "https://[fe80::1]/", "https://[fd00::1]/", "https://0.0.0.0/",
    "https://100.64.0.1/", "https://224.0.0.1/", "https://no-such-host.invalid/",
])
def test_uat_and_prod_call_only_https_urls_of_public_addresses(url):
    with pytest.raises(Refused):
        resolve(url, public=True)


def test_a_public_https_address_is_allowed_and_called_at_the_checked_address():
    target = resolve("https://93.184.215.14:8443/in?x=1", public=True)
    assert target == ("https", "93.184.215.14", 8443, "93.184.215.14", "/in?x=1")


def test_dev_calls_loopback_over_http():
    assert resolve("http://127.0.0.1:8080/", public=False).address == "127.0.0.1"
    assert resolve("http://localhost/", public=False).address in ("127.0.0.1", "::1")
    with pytest.raises(Refused):
        resolve("ftp://127.0.0.1/", public=False)


@pytest.mark.parametrize("address, public", [("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False),
                                             ("::ffff:10.0.0.1", False), ("fe80::1%eth0", False)])
def test_public_addresses(address, public):
    assert allowed_address(address, public=True) is public
    assert allowed_address(address, public=False) is True


def test_the_signature_is_hmac_sha256_of_the_timestamp_dot_body():
    expected = hmac.new(b"s3cret", b"1700000000.{}", "sha256").hexdigest()
    assert signature("s3cret", b"{}", 1700000000) == f"t=1700000000,v1={expected}"
    assert signature("s3cret", b"{}", 1700000000) != signature("s3cret", b"{ }", 1700000000)


def test_retry_delays_grow_with_jitter_up_to_the_bound():
    with config.patch({"WEBHOOK_RETRY_INITIAL_SECONDS": 10, "WEBHOOK_RETRY_MAX_SECONDS": 3600}):
        delays = [retry_delay(attempt).total_seconds() for attempt in range(1, 14)]
    for attempt, delay in enumerate(delays, start=1):
        assert min(10 * 2 ** (attempt - 1), 3600) <= delay <= min(10 * 2 ** (attempt - 1) + 10, 3600)
    assert delays[-1] == 3600


def test_a_recorded_error_leaves_out_the_urls_query():
    url = "https://hooks.example.com/in?token=receivers-own-token"
    assert without_query("BadStatusLine: POST /in?token=receivers-own-token", url) == "BadStatusLine: POST /in?..."
    assert without_query("ConnectTimeout: hooks.example.com", "https://hooks.example.com/in") == \
        "ConnectTimeout: hooks.example.com"
