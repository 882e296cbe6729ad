"""Invoice PDFs (read back with pypdf) and the local folder's signed, expiring links."""

from datetime import datetime
from decimal import Decimal

import jwt
import pytest

from common.errors import Forbidden, NotFound
from services.notifications.invoices import LocalFolderStore, render_invoice_pdf, tax_breakdown
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

    assert "Zürich mug ?" in text and "3" in text and "15.00 USD" in text
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
