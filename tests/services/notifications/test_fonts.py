"""The invoice fonts: DejaVu cut to the common characters gives the very PDF the full font gives."""

import unicodedata
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.notifications.fonts import DEJAVU, common_cut, font_path, invoice_fonts
from services.notifications.invoices import InvoicePdf, write_invoice
from tests.services.notifications.helpers import an_order

SHOP = {"name": "Corner Shop", "address": "1 Market Street\nSpringfield", "email": "shop@example.com",
        "tax_id": "GB123", "tax_rate": "0.20", "tax_label": "VAT"}
FULL = {face: font_path(*face) for face in DEJAVU}
PRINTABLE = sorted(chr(code) for code in common_cut(*FULL.values()).covered
                   if unicodedata.category(chr(code))[0] in "LNPSZ" and chr(code).isprintable())


def pdf_with(fonts, order):
    pdf = InvoicePdf("INV-2026-000001", fonts)
    pdf.creation_date = datetime(2026, 12, 2, tzinfo=UTC)
    write_invoice(pdf, order, "INV-2026-000001", datetime(2026, 12, 2), SHOP)
    return bytes(pdf.output())


def an_order_naming(name, item):
    order = an_order(7, 3)
    order["shipping_address"]["name"] = name
    order["items"][0]["name"] = item
    return order


words = st.text(alphabet=st.sampled_from(PRINTABLE), min_size=1, max_size=40)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=words, item=words)
def test_an_invoice_in_common_characters_is_the_same_pdf_through_the_cut(name, item):
    order = an_order_naming(name, item)
    fonts = invoice_fonts(order, "INV-2026-000001", SHOP)

    assert fonts != FULL and set(fonts) == set(DEJAVU)
    assert pdf_with(fonts, order) == pdf_with(FULL, order)


def test_a_common_latin_invoice_is_the_same_pdf_through_the_cut():
    order = an_order_naming("Zoë Łukasz Ñandú Σωκράτης Жуков – “Ōta” №5 €", "Crème brûlée ½ ‰")
    assert invoice_fonts(order, "INV-2026-000001", SHOP) != FULL
    assert pdf_with(invoice_fonts(order, "INV-2026-000001", SHOP), order) == pdf_with(FULL, order)


def test_a_character_outside_the_cut_takes_the_full_font_and_cjk_the_fallback_too():
    assert invoice_fonts(an_order_naming("Ann", "Zürich mug ☕"), SHOP) == FULL
    with_cjk = invoice_fonts(an_order_naming("李小龙", "Tea"), SHOP)
    assert with_cjk == {**FULL, ("DroidFallback", ""): font_path("DroidFallback", "")}


def test_the_cut_leaves_out_the_tables_fpdf2_drops_from_every_pdf():
    """Subsetting DejaVu's layout tables was most of the cut's time, for tables no invoice embeds."""
    from fontTools.ttLib import TTFont

    from services.notifications.fonts import FPDF_DROPS

    for path in common_cut(*FULL.values()).paths.values():
        assert not set(TTFont(path, lazy=True).keys()) & set(FPDF_DROPS)
    assert {"GSUB", "GPOS"} <= set(TTFont(FULL[DEJAVU[0]], lazy=True).keys())  # the full font has them
