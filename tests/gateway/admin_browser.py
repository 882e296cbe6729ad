"""Drives the admin panel in headless Chromium (Playwright's sync API) against a running gateway.

Run with plain python (no eventlet): ``python -m tests.gateway.admin_browser BASE_URL SHOTS_DIR``, the customer's
credentials in the environment (ADMIN_PANEL_CUSTOMER / ADMIN_PANEL_PASSWORD). It prints one JSON document: the steps
passed, the console errors seen, and raises (exit 1) at the first step whose expectation fails.
test_admin_panel.py starts it and checks what it prints.
"""

import json
import os
import re
import sys
import tempfile
import time
import urllib.request

from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ADDRESS = {"name": "Ann Lee", "line1": "2 High Street", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}
# Refused requests the browser reports on its console; allowed only while a step provokes them on purpose.
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of (401|403|409|422)")


def api(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, method=method, data=data,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


class Run:
    def __init__(self, page, shots):
        self.page, self.shots, self.steps, self.errors = page, shots, [], []
        self.expecting_refusals = False
        page.on("console", self.console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def console(self, message):
        if message.type == "error" and not (self.expecting_refusals and REFUSED.search(message.text)):
            self.errors.append(message.text)

    def step(self, name):
        self.steps.append(name)

    def settle(self):
        self.page.wait_for_load_state("networkidle")
        expect(self.page.locator("#busy")).to_be_hidden()

    def shot(self, name):
        self.settle()
        self.page.screenshot(path=os.path.join(self.shots, f"admin-{name}.png"), full_page=True)

    def screen(self, name):
        self.page.click(f"nav a[data-screen={name}]")
        expect(self.page.locator("#view h1")).to_have_text(name.capitalize())
        self.settle()


def login(page, email, password):
    page.fill("#login-form input[name=email]", email)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form button[type=submit]")


def main(base, shots):
    customer, password = os.environ["ADMIN_PANEL_CUSTOMER"], os.environ["ADMIN_PANEL_PASSWORD"]
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS,
                                                                headless=True, viewport={"width": 1280, "height": 800})
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)
        run = Run(page, shots)
        try:
            drive(run, page, base, customer, password)
        finally:
            print(json.dumps({"steps": run.steps, "console_errors": run.errors}))
            context.close()


def drive(run, page, base, customer, password):
    page.goto(base + "/admin")
    expect(page.locator("#login-form")).to_be_visible()
    run.shot("login")

    run.expecting_refusals = True
    login(page, "admin@example.com", "not-the-password")
    expect(page.locator("#login-error")).to_have_text("Invalid email or password.")
    login(page, customer, password)
    expect(page.locator("#login-error")).to_contain_text("not staff")
    expect(page.locator("#app")).to_be_hidden()
    run.expecting_refusals = False
    run.step("a wrong password and a customer account are refused")

    login(page, "admin@example.com", os.environ.get("ADMIN_PANEL_ADMIN_PASSWORD", "admin12345"))
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#view h1")).to_have_text("Overview")
    run.step("an admin logs in")

    run.screen("categories")
    page.fill("#category-form input[name=name]", "Garden")
    page.click("#category-form button[type=submit]")
    expect(page.locator("#category-tree input[value=Garden]")).to_be_visible()
    page.fill("#category-form input[name=name]", "Tools")
    page.select_option("#category-form select[name=parent_id]", label="Garden")
    page.click("#category-form button[type=submit]")
    expect(page.locator("#category-tree li", has=page.locator("input[value=Garden]")).first
           .locator("ul input[value=Tools]")).to_be_visible()
    run.expecting_refusals = True
    page.locator("#category-tree li").first.locator("form.row").first.locator("button.danger").click()
    expect(page.locator("#error")).to_be_visible()
    run.expecting_refusals = False
    run.step(f"categories: created Garden > Tools; deleting a parent shows: {page.locator('#error').inner_text()}")
    run.settle()
    shed = page.locator("#category-tree li").nth(1).locator("form.row")
    shed.locator("input[name=name]").fill("Hand tools")
    shed.locator("select[name=parent_id]").select_option(label="(top level)")
    shed.locator("button[type=submit]").click()
    expect(page.locator("#category-tree > ul > li")).to_have_count(2)
    moved = page.locator("#category-tree > ul > li").filter(has=page.locator("input[value='Hand tools']"))
    moved.locator("select[name=parent_id]").select_option(label="Garden")
    moved.locator("button[type=submit]").click()
    expect(page.locator("#category-tree > ul > li")).to_have_count(1)
    expect(page.locator("#category-tree ul ul input[value='Hand tools']")).to_be_visible()
    run.step("categories: Tools renamed Hand tools, moved to the top level and back under Garden")
    run.shot("categories")

    run.screen("products")
    page.click("#new-product")
    run.expecting_refusals = True
    page.fill("#product-form input[name=sku]", "SPADE-1")
    page.fill("#product-form input[name=name]", "Spade")
    page.fill("#product-form input[name=price]", "-3")
    page.click("#product-form button[type=submit]")
    expect(page.locator("#product-form .field-error")).to_be_visible()
    run.expecting_refusals = False
    field_message = page.locator("#product-form .field-error").first.inner_text()
    page.fill("#product-form input[name=price]", "24.50")
    page.select_option("#product-form select[name=category_id]", label="Hand tools")
    page.fill("#product-form input[name=initial_stock]", "3")
    page.click("#product-form button[type=submit]")
    row = page.locator("tr[data-sku='SPADE-1']")
    expect(row).to_be_visible()
    row.locator("input[name=on_hand]").fill("5")
    row.locator("input[name=low_stock_threshold]").fill("4")
    row.locator("form.stock button").click()
    expect(row.locator(".saved")).to_have_text("Saved")
    expect(row.locator(".available")).to_have_text("5")
    admin = api(base, "POST", "/auth/token", {"email": "admin@example.com",
                                              "password": os.environ.get("ADMIN_PANEL_ADMIN_PASSWORD", "admin12345")})
    api(base, "POST", "/products", {"sku": "RAKE-1", "name": "Rake", "price": "9.99", "initial_stock": 20},
        admin["access_token"])
    page.click("#product-search button[type=submit]")
    expect(page.locator(".page-info")).to_contain_text("2 in all")
    page.fill("#product-search input[name=q]", "spade")
    page.click("#product-search button[type=submit]")
    expect(page.locator(".page-info")).to_contain_text("1 in all")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.fill("#product-search input[name=q]", "")
    page.click("#product-search button[type=submit]")
    expect(page.locator(".page-info")).to_contain_text("2 in all")
    page.locator("tr[data-sku='RAKE-1'] button", has_text="Edit").click()
    page.fill("#product-form input[name=price]", "11.00")
    page.click("#product-form button[type=submit]")
    expect(page.locator("tr[data-sku='RAKE-1']")).to_contain_text("11.00 USD")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-sku='RAKE-1'] button.danger").click()
    expect(page.locator("tr[data-sku='RAKE-1']")).to_have_count(0)
    expect(page.locator(".page-info")).to_contain_text("1 in all")
    page.fill("#product-search input[name=q]", "spade")
    page.click("#product-search button[type=submit]")
    expect(page.locator("tbody tr")).to_have_count(1)
    run.step("products: RAKE-1 edited (price 11.00) and deleted")
    run.step(f"products: created SPADE-1 (a bad price showed '{field_message}'), stock set to 5/4 in place, found")
    run.shot("products")

    product_id = int(api(base, "GET", "/products?q=SPADE-1")["items"][0]["id"])
    token = api(base, "POST", "/auth/token", {"email": customer, "password": password})["access_token"]
    deadline = time.monotonic() + 15
    while api(base, "GET", f"/products/{product_id}")["available"] != 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    order = api(base, "POST", "/orders", {"items": [{"product_id": product_id, "quantity": 2}],
                                          "shipping_address": ADDRESS, "payment_token": "tok_visa"}, token)
    run.step(f"the customer placed order {order['id']} over the API")

    run.screen("orders")
    row = page.locator(f"tr[data-order='{order['id']}']")
    for _ in range(50):
        if row.locator(".order-status").inner_text() == "PAID":
            break
        time.sleep(0.3)
        page.click("#refresh-orders")
        expect(page.locator("#busy")).to_be_hidden()
    expect(row.locator(".order-status")).to_have_text("PAID")
    page.select_option("#order-filter select[name=status]", "PAID")
    page.click("#order-filter button[type=submit]")
    expect(row).to_be_visible()
    row.locator("button").click()
    detail = page.locator(f"#order-detail [data-order='{order['id']}']")
    expect(detail.locator("h2").first).to_contain_text("PAID")
    expect(detail.locator(".history tr")).to_have_count(2)
    run.step("the order reached PAID in the panel (lines, payment and history shown)")

    detail.locator("button[data-action=Ship]").click()
    detail = page.locator(f"#order-detail [data-order='{order['id']}']")
    expect(detail.locator("h2").first).to_contain_text("SHIPPED")
    expect(detail.locator(".history tr")).to_have_count(3)
    run.step("shipped: status and history changed")
    page.select_option("#order-filter select[name=status]", "SHIPPED")
    page.click("#order-filter button[type=submit]")
    expect(row.locator(".order-status")).to_have_text("SHIPPED")
    row.locator("button").click()
    detail = page.locator(f"#order-detail [data-order='{order['id']}']")
    expect(detail.locator(".history tr")).to_have_count(3)
    run.shot("orders")

    run.expecting_refusals = True
    detail.locator("button[data-action=Cancel]").click()
    expect(page.locator("#error")).to_be_visible()
    illegal = page.locator("#error").inner_text()
    run.expecting_refusals = False
    run.step(f"an illegal step (cancel a shipped order) shows: {illegal}")

    run.screen("customers")
    page.fill("#user-search input[name=email]", customer.split("@")[0])
    page.click("#user-search button[type=submit]")
    expect(page.locator(".page-info")).to_contain_text("1 in all")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr td").nth(1)).to_have_text(customer)
    run.step("customers: found the customer by email")
    run.shot("customers")

    run.screen("overview")
    expect(page.locator("#by-status")).to_contain_text("SHIPPED")
    expect(page.locator("#revenue .big")).to_contain_text("49.00 USD")
    expect(page.locator("#low-stock")).to_contain_text("SPADE-1")
    run.step(f"overview: revenue {page.locator('#revenue .big').inner_text()}")
    run.shot("overview")

    page.evaluate("sessionStorage.setItem('pos-admin-token', 'expired.token.value')")
    run.expecting_refusals = True
    page.click("nav a[data-screen=orders]")
    expect(page.locator("#login-form")).to_be_visible()
    run.expecting_refusals = False
    run.step("a 401 goes back to the login")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
