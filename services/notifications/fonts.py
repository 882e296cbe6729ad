"""The invoice fonts: which files an invoice embeds, and DejaVu cut down to what most invoices print.

fpdf2 parses every font it is given for each document and subsets it again when it writes the PDF: for DejaVu's
6,000 glyphs that was most of an invoice's CPU (~130 ms a face). Cut once per process to the characters of
``COMMON``, the two faces cost a tenth of that per invoice. The cut leaves out the tables fpdf2 drops from every
PDF anyway (``FPDF_DROPS``): subsetting the layout tables made the cut take 0.5 s CPU, 0.1 s without. An invoice
printing anything outside the cut uses the full fonts as before. The subset fpdf2 embeds is the same either way
(tests/services/notifications/test_fonts.py compares the PDFs byte for byte).
"""

import json
import tempfile
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

from services.notifications.channels import setting

# Unicode fonts from the Debian packages fonts-dejavu-core and fonts-droid-fallback (installed by
# scripts/ensure-tools.sh and the Dockerfile): DejaVu for Latin, Greek and Cyrillic, Droid Sans Fallback for CJK.
FONT_DIR = "/usr/share/fonts/truetype"
FONTS = {("DejaVu", ""): "dejavu/DejaVuSans.ttf", ("DejaVu", "B"): "dejavu/DejaVuSans-Bold.ttf",
         ("DroidFallback", ""): "droid/DroidSansFallbackFull.ttf"}
DEJAVU = (("DejaVu", ""), ("DejaVu", "B"))
# Latin (with the C0 controls, as the full font maps some), Greek, Cyrillic, punctuation, currency, letterlike signs
# The tables fpdf2 (fpdf/output.py, its font subsetting) leaves out of every PDF it writes.
FPDF_DROPS = ("FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC", "EBDT", "EBLC", "EBSC",
              "SVG ", "CPAL", "COLR")
COMMON = ((0x0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x2000, 0x206F), (0x20A0, 0x20CF), (0x2100, 0x214F))


def font_path(family, style):
    path = Path(setting("INVOICE_FONT_DIR", FONT_DIR)) / FONTS[(family, style)]
    if not path.is_file():
        raise RuntimeError(f"invoice font missing: {path} (install fonts-dejavu-core and fonts-droid-fallback, "
                           "or set INVOICE_FONT_DIR)")
    return str(path)


@lru_cache(maxsize=8)
def codepoints(path):
    return frozenset(TTFont(path, lazy=True).getBestCmap())


def covered(paths):
    return frozenset.intersection(*(codepoints(path) for path in paths))


def invoice_fonts(*values):
    """``{(family, style): path}`` for an invoice printing ``values``: the cut when it has every character,
    else the full DejaVu, with Droid Sans Fallback when DejaVu lacks one (parsing Droid's 4 MB of CJK glyphs
    costs about half a second, so only invoices that print such a character pay for it)."""
    characters = set(json.dumps(values, default=str, ensure_ascii=False))
    cut = common_cut(*(font_path(*face) for face in DEJAVU))
    if all(ord(char) in cut.covered for char in characters):
        return cut.paths
    fonts = {face: font_path(*face) for face in DEJAVU}
    if any(ord(char) not in covered(fonts.values()) for char in characters):
        fonts[("DroidFallback", "")] = font_path("DroidFallback", "")
    return fonts


@dataclass(frozen=True)
class Cut:
    folder: tempfile.TemporaryDirectory  # removed when the process exits
    paths: dict
    covered: frozenset


@cache
def common_cut(*paths):
    folder = tempfile.TemporaryDirectory(prefix="invoice-fonts-")
    cut = {face: cut_font(path, Path(folder.name)) for face, path in zip(DEJAVU, paths, strict=True)}
    return Cut(folder, cut, covered(cut.values()))


def cut_font(path, folder):
    """``path`` cut to ``COMMON``, keeping everything fpdf2's own subsetting reads (glyph names, tables, hinting,
    the original bounding boxes), so that subsetting the cut gives the bytes subsetting the original gives."""
    font = TTFont(path, lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    options = subset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=True,
                             name_IDs=["*"], name_languages=["*"], name_legacy=True,
                             prune_unicode_ranges=False, prune_codepage_ranges=False)
    # what fpdf2's subsetting drops anyway (without text shaping nothing reads the layout tables), so the cut
    # need not subset them: GSUB/GPOS closure over DejaVu's features was most of the cut's second
    options.drop_tables = [*options.drop_tables, *FPDF_DROPS]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[code for first, last in COMMON for code in range(first, last + 1)])
    subsetter.subset(font)
    target = folder / Path(path).name
    font.save(target)
    return str(target)
