"""The invoice fonts: DejaVu for Latin, Greek and Cyrillic, Droid Sans Fallback for what DejaVu lacks (CJK).

reportlab parses a font once per process, when it is registered, and embeds in each PDF only the glyphs that PDF
prints; Droid is registered (and embedded) only once an invoice prints a character DejaVu has not. A text reaches a
paragraph through ``markup``, which escapes it and puts each run DejaVu cannot print in the fallback font, so any
name prints.
"""

from functools import cache
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
    text = str(text if text is not None else "")
    covered = registered(face)
    runs, current, missing = [], [], False
    for char in text:
        lacks = ord(char) not in covered and not char.isspace()
        if lacks != missing and current:
            runs.append((missing, "".join(current)))
            current = []
        current.append(char)
        missing = lacks
    if current:
        runs.append((missing, "".join(current)))
    return "".join(fallback(part) if lacks else escape(part) for lacks, part in runs)


def fallback(part):
    if all(ord(char) not in registered(FALLBACK) for char in part):
        return escape(part)  # neither font has it: DejaVu's missing-glyph box, as before
    return f'<font name="{FALLBACK}">{escape(part)}</font>'
