"""The invoice fonts: any name prints, each character in a font that has it, and markup in a name is only text."""

import shutil
import subprocess
import unicodedata
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.notifications.fonts import BOLD, FALLBACK, REGULAR, markup, registered
from services.notifications.invoices import render_invoice_pdf
from tests.services.notifications.helpers import an_order

SHOP = {"name": "Corner Shop", "address": "1 Market Street\nSpringfield", "email": "shop@example.com",
        "tax_id": "GB123", "tax_rate": "0.20", "tax_label": "VAT"}


def printable(codes):
    """Characters that print alone, left to right (right-to-left text would need shaping, which invoices lack)."""
    return sorted(chr(code) for code in codes if unicodedata.category(chr(code))[0] in "LNPS"
                  and chr(code).isprintable() and unicodedata.bidirectional(chr(code)) not in ("R", "AL"))


LATIN = printable(code for code in registered(REGULAR) if code < 0x2000)
CJK = printable(code for code in registered(FALLBACK) if 0x4E00 <= code <= 0x9FFF)[:2000]


def an_order_naming(name, item="Green tea"):
    order = an_order(7, 3)
    order["shipping_address"]["name"] = name
    order["items"][0]["name"] = item
    return order


def printed_text(pdf):
    return subprocess.run(["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="pdftotext (Debian poppler-utils) is not installed: scripts/ensure-tools.sh")


def test_only_the_runs_dejavu_lacks_go_to_the_fallback_font():
    assert markup("Zoë Łukasz Σωκράτης Жуков") == "Zoë Łukasz Σωκράτης Жуков"
    assert markup("Zoë 李小龙 Lee") == f'Zoë <font name="{FALLBACK}">李小龙</font> Lee'
    assert markup("李 小") == f'<font name="{FALLBACK}">李</font> <font name="{FALLBACK}">小</font>'
    assert markup("Tea", BOLD) == "Tea"


def test_markup_in_a_name_is_escaped_and_a_character_no_font_has_stays_as_it_is():
    assert markup('<b>Ann</b> & "Bo"') == '&lt;b&gt;Ann&lt;/b&gt; &amp; "Bo"'
    assert markup("\U0001F600") == "\U0001F600"  # in neither font: no fallback tag, DejaVu's missing-glyph box
    assert markup(None) == ""


@needs_poppler
def test_a_name_full_of_markup_prints_as_typed():
    name = '<font name="x">Ann</font> & <b>Bo</b> <br/> "C&amp;D"'

    text = printed_text(render_invoice_pdf(an_order_naming(name, item="<i>mug</i> &"), "INV-1", datetime(2026, 12, 3),
                                           SHOP))

    assert name in text and "<i>mug</i> &" in text


@needs_poppler
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(alphabet=st.sampled_from(LATIN + CJK + list("<>&\"'")), min_size=1, max_size=30))
def test_any_name_in_the_fonts_prints_every_character(name):
    text = printed_text(render_invoice_pdf(an_order_naming(name), "INV-1", datetime(2026, 12, 3), SHOP))

    assert unicodedata.normalize("NFKC", name) in unicodedata.normalize("NFKC", "".join(text.split("\n")))
