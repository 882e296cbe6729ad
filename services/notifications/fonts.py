"""The invoice fonts: DejaVu for Latin, Greek and Cyrillic, Droid Sans Fallback for what DejaVu lacks (CJK).

reportlab parses a font once per process, when it is registered, and embeds in each PDF only the glyphs that PDF
prints; Droid is registered (and embedded) only once an invoice prints a character DejaVu has not. A text reaches a
paragraph through ``markup``, which escapes it and puts each run DejaVu cannot print in the fallback font, so any
name prints.
"""

from functools import cache
from itertools import groupby
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from services.notifications.channels import setting

# Unicode fonts from the Debian packages fonts-dejavu-core and fonts-droid-fallback (installed by
# scripts/ensure-tools.sh and the Dockerfile).
FONT_DIR = "/usr/share/fonts/truetype"
FONTS = {"DejaVu": "dejavu/DejaVuSans.ttf", "DejaVu-Bold": "dejavu/DejaVuSans-Bold.ttf",
         "DroidFallback": "droid/DroidSansFallbackFull.ttf"}
REGULAR, BOLD, FALLBACK = "DejaVu", "DejaVu-Bold", "DroidFallback"


def font_path(name):
    path = Path(setting("INVOICE_FONT_DIR", FONT_DIR)) / FONTS[name]
    if not path.is_file():
        raise RuntimeError(f"invoice font missing: {path} (install fonts-dejavu-core and fonts-droid-fallback, "
                           "or set INVOICE_FONT_DIR)")
    return str(path)


@cache
def registered(name):
    """The font ``name``, registered with reportlab the first time it is asked for; returns its code points."""
    font = TTFont(name, font_path(name))
    pdfmetrics.registerFont(font)
    return frozenset(font.face.charToGlyph)


def invoice_fonts():
    """Registers the two DejaVu faces every invoice uses."""
    registered(REGULAR)
    registered(BOLD)
    pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD)


def markup(text, face=REGULAR):
    """``text`` as paragraph markup: escaped, with every run of characters ``face`` lacks in the fallback font."""
    covered = registered(face)
    runs = groupby(str(text if text is not None else ""), key=lambda char: ord(char) in covered or char.isspace())
    return "".join(escape("".join(chars)) if printable else fallback("".join(chars)) for printable, chars in runs)


def fallback(part):
    covered = registered(FALLBACK)
    if all(ord(char) not in covered for char in part):
        return escape(part)  # neither font has it: DejaVu's missing-glyph box, as before
    return f'<font name="{FALLBACK}">{escape(part)}</font>'
