"""Invoice PDFs (read back with pypdf and poppler's pdftotext) and the local folder's signed, expiring links."""

import re
import shutil
import subprocess
from datetime import datetime
from decimal import Decimal

import jwt
import pytest

from common.errors import Forbidden, NotFound
from services.notifications.invoices import COLUMNS, LocalFolderStore, render_invoice_pdf, tax_breakdown
from services.notifications.messages import render_email
from tests.services.notifications.helpers import an_order, pdf_text

SHOP = {"name": "Corner Shop", "address": "1 Market Street\nSpringfield", "email": "shop@example.com",
        "tax_id": "GB123", "tax_rate": "0.20", "tax_label": "VAT"}


def test_the_pdf_shows_shop_customer_lines_taxes_and_the_paid_total():
    pdf = render_invoice_pdf(an_order(7, 3), "INV-2026-000001", datetime(2026, 11, 24), SHOP)

    text = pdf_text(pdf)
    assert pdf.startswith(b"%PDF")
    for expected in ("Corner Shop", "Springfield", "Tax ID: GB123", "Invoice INV-2026-000001", "Date: 2026-11-24",
                     "Order: #7", "Ann Lee", "2 High Street", "LS1 1AA Leeds", "TEA-001", "Green tea", "4.50 USD",
                     "9.00 USD", "MUG-002", "Blue mug", "12.00 USD", "Net amount", "17.50 USD", "VAT 20%",
                     "3.50 USD", "Total", "21.00 USD"):
        assert expected in text, (expected, text)


def test_without_a_tax_rate_there_are_no_tax_lines_and_any_name_prints():
    order = an_order(8, 3, items=[{"product_id": 1, "sku": "Z-1", "name": "Zürich mug ☕", "unit_price": "5",
                                   "quantity": 3, "line_total": "15"}])

    text = pdf_text(render_invoice_pdf(order, "INV-2026-000002", datetime(2026, 1, 2), {**SHOP, "tax_rate": 0}))

    assert "Zürich mug ☕" in text and "3" in text and "15.00 USD" in text
    assert "VAT" not in text and "Net amount" not in text


@pytest.mark.parametrize("total, rate, net, tax", [
    ("21.00", "0.20", "17.50", "3.50"), ("10.00", "0.07", "9.35", "0.65"), ("0.01", "0.25", "0.01", "0.00"),
])
def test_tax_is_split_out_of_the_paid_total(total, rate, net, tax):
    split = tax_breakdown(total, rate)
    assert (split["net"], split["tax"]) == (Decimal(net), Decimal(tax))
    assert split["net"] + split["tax"] == Decimal(total)


def test_a_local_link_opens_the_file_until_it_expires(tmp_path):
    store = LocalFolderStore(tmp_path, "a-secret-that-is-long-enough-for-hs256", "http://gw.test/")
    store.put("invoices/INV-1.pdf", b"%PDF-1.4 test")

    url, expires_at = store.url("invoices/INV-1.pdf", ttl=60)
    token = url.removeprefix("http://gw.test/invoices/")
    assert url.startswith("http://gw.test/invoices/") and expires_at.tzinfo is not None
    assert store.get(store.open_token(token)) == b"%PDF-1.4 test"

    expired, _ = store.url("invoices/INV-1.pdf", ttl=-1)
    with pytest.raises(Forbidden) as too_late:
        store.open_token(expired.rsplit("/", 1)[1])
    assert too_late.value.code == "link_expired"
    forged = jwt.encode({"key": "invoices/INV-1.pdf", "aud": "invoice-download"}, "another-secret-long-enough-" * 2)
    for bad in (forged, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "not-a-token"):
        with pytest.raises(Forbidden) as refused:
            store.open_token(bad)
        assert refused.value.code == "invalid_link"
    with pytest.raises(NotFound):
        store.get("invoices/missing.pdf")


NAME = "Zoë Łukasz 李小龙"
LONG_SKU = "SKU-" + "7" * 36  # 40 characters, no space to break at


def a_long_order():
    items = [{"product_id": i, "sku": LONG_SKU if i % 9 == 0 else f"S-{i}",
              "name": f"{NAME}'s hand-thrown teapot, glazed in celadon, boxed with two cups, item {i}" if i % 4 == 0
              else f"Tea {i}", "unit_price": "2.00", "quantity": 1, "line_total": "2.00"} for i in range(1, 61)]
    address = {"name": NAME, "line1": "ul. Świętokrzyska 1", "city": "Warszawa", "postal_code": "00-001",
               "country": "PL"}
    return {**an_order(9, 3, items=items), "total": "120.00", "shipping_address": address}


def words_by_page(pdf, tmp_path):
    """Every word poppler finds, as ``(page, x_min, y_min, x_max, y_max, text)`` in points."""
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    html = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True).stdout
    words, page = [], 0
    for tag in re.finditer(r'<page |<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<',
                           html):
        if tag.group(0).startswith("<page"):
            page += 1
        else:
            words.append((page, *map(float, tag.groups()[:4]), tag.group(5)))
    return words


needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="pdftotext (Debian poppler-utils) is not installed: scripts/ensure-tools.sh")


@needs_poppler
def test_any_name_prints_long_skus_and_names_wrap_in_their_cells_and_long_orders_repeat_the_header(tmp_path):
    pdf = render_invoice_pdf(a_long_order(), "INV-2026-000009", datetime(2026, 12, 1), SHOP)
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    text = text.decode()
    pages = text.split("\f")[:-1]

    assert NAME in text and "Świętokrzyska" in text and "?" not in text
    assert len(pages) >= 2 and all(re.search(r"SKU\s+Item\s+Qty\s+Unit price\s+Amount", page) for page in pages)
    raw = subprocess.run(["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "".join(raw.split()).count(LONG_SKU) == 6  # wrapped inside its cell, but every character printed
    assert "120.00 USD" in pages[-1]

    words = words_by_page(pdf, tmp_path)
    for a, b in ((a, b) for i, a in enumerate(words) for b in words[i + 1:] if a[0] == b[0]):
        overlap_x = min(a[3], b[3]) - max(a[1], b[1])
        overlap_y = min(a[4], b[4]) - max(a[2], b[2])
        assert overlap_x <= 0.5 or overlap_y <= 0.5, f"{a[5]!r} overlaps {b[5]!r} on page {a[0]}"
    # every word of the table stays inside one column (the table spans the page between the 10 mm margins)
    scale = (595.28 - 2 * 28.35) / sum(width for _, width, _ in COLUMNS)
    edges = [28.35]
    for _, width, _ in COLUMNS:
        edges.append(edges[-1] + width * scale)
    table = [w for w in words if w[5].startswith(("S-", "SKU-", "777")) or "teapot" in w[5]]
    for _page, x_min, _, x_max, _, word in table:
        columns = zip(edges, edges[1:], strict=False)
        assert any(left - 0.5 <= x_min and x_max <= right + 0.5 for left, right in columns), word


def test_emails_greet_any_name_in_both_parts():
    order = a_long_order()
    subject, text, html = render_email("order_confirmation", {
        "order": order, "customer": {"name": NAME, "email": "zoe@example.com"}})
    assert NAME in text and NAME in html
    assert "李小龙" in html


def embedded_fonts(pdf, tmp_path):
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True, text=True).stdout
    return {line.split()[0].split("+")[-1] for line in listing.splitlines()[2:] if line.strip()}


@needs_poppler
def test_the_cjk_fallback_font_is_embedded_only_when_a_name_needs_it(tmp_path):
    latin = an_order(7, 3)
    latin["shipping_address"]["name"] = "Zoë Łukasz Ñandú Σωκράτης Жуков"
    cjk = an_order(8, 1)
    cjk["shipping_address"]["name"] = NAME

    latin_pdf = render_invoice_pdf(latin, "INV-2026-000010", datetime(2026, 12, 2), SHOP)
    cjk_pdf = render_invoice_pdf(cjk, "INV-2026-000011", datetime(2026, 12, 2), SHOP)

    assert not any("Droid" in font for font in embedded_fonts(latin_pdf, tmp_path))
    assert any("Droid" in font for font in embedded_fonts(cjk_pdf, tmp_path))
    for pdf, name in ((latin_pdf, latin["shipping_address"]["name"]), (cjk_pdf, NAME)):
        text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
        assert name in text
