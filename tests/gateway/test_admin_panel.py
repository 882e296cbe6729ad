"""The admin panel in a real browser: headless Chromium (Debian's) driven by Playwright, against the real stack.

Accounts, products, inventory, orders, payments (with the real gRPC provider) and the gateway run on the real broker;
tests/gateway/admin_browser.py drives the browser in a subprocess of plain python (Playwright's sync API and eventlet's
monkey-patching do not mix) and prints what it saw. It screenshots each screen into the test's tmp_path; with
``POS_ADMIN_SCREENSHOTS=1`` into docs/images/admin-*.png (the README's pictures; look at them before committing).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.test_orders_http import shop  # noqa: F401  (the fixture: the whole shop with payments)
from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CUSTOMER, PASSWORD = "ann.admin-test@example.com", "correct-horse"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="chromium is not installed (scripts/ensure-tools.sh)")


def test_staff_run_the_shop_from_the_admin_panel(shop, http, web_config_port, tmp_path):  # noqa: F811
    pytest.importorskip("playwright")
    registered = http.post("/auth/register", json={"email": CUSTOMER, "password": PASSWORD, "name": "Ann Lee"})
    assert registered.status_code == 201, registered.text
    page = http.get("/admin")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "style-src 'self';" in csp
    assert "unsafe-inline" not in csp

    shots = ROOT / "docs" / "images" if os.environ.get("POS_ADMIN_SCREENSHOTS") else tmp_path
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(PYTHONPATH=str(ROOT), ADMIN_PANEL_CUSTOMER=CUSTOMER, ADMIN_PANEL_PASSWORD=PASSWORD,
               ADMIN_PANEL_ADMIN_PASSWORD="admin-password-1")
    driver = subprocess.run([sys.executable, "-m", "tests.gateway.admin_browser",
                             f"http://127.0.0.1:{web_config_port}", str(shots)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)

    assert driver.returncode == 0, driver.stdout + driver.stderr
    seen = json.loads(driver.stdout.strip().splitlines()[-1])
    print("\n".join(seen["steps"]))
    assert seen["console_errors"] == []
    assert len(seen["steps"]) == 13
    assert any("illegal" in step and "SHIPPED" in step.upper() for step in seen["steps"]), seen["steps"]
    screens = ("login", "overview", "products", "categories", "orders", "customers")
    assert all((shots / f"admin-{name}.png").stat().st_size > 0 for name in screens)
