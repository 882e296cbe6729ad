"""The search window of API.md ("Products"), in one place: totals are exact up to ``SEARCH_WINDOW`` matches
(10,000), beyond that capped with ``total_exact: false``, and a page that ends past the window is refused.

The cap is what lets a search stop counting: the SQL path counts at most ``window + 1`` rows and the text index
never has to rank past the window, so a common word costs the same at 1,000,000 products as at 20,000.
"""

from nameko import config

from common.errors import ValidationFailed
from schemas.common import page_of

DEFAULT_WINDOW = 10_000


def size():
    return int(config.get("SEARCH_WINDOW") or DEFAULT_WINDOW)


def check(filters, window):
    """API.md's rule as written, ``page * page_size > window``: refused from the request alone, whatever it
    matches, so a client learns it at once and not only when the catalogue grows."""
    if filters["page"] * filters["page_size"] > window:
        raise ValidationFailed(
            f"A page must end within the first {window} matches: narrow the filters instead.",
            details={"page": [f"page * page_size must be at most {window}."]}, code="result_window_too_large")


def page(items, filters, total, window):
    """The answer for a search that counted ``total`` matches (at most ``window + 1`` of them are enough)."""
    return page_of(items, filters["page"], filters["page_size"], min(total, window), total_exact=total <= window)
