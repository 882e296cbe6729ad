"""Product search parameters (schemas/products.py) for any combination of query strings: they load to values
within API.md's ranges, or fail with field messages; nothing else ever happens."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas.common import MAX_PAGE, MAX_PAGE_SIZE
from schemas.products import PRODUCT_SORTS, ProductSearchSchema

NAMES = ["q", "category_id", "min_price", "max_price", "in_stock", "sort", "page", "page_size", "other"]
TRICKY = ["", " ", "0", "-1", "1", "20", "100", "101", "1e3", "NaN", "inf", "true", "false", "yes", "2.5", "abc",
          "-price", "name", "99999999999999999999999", "1" * 400, "\x00", "%", "é", "0.001", "-0"]
values = st.one_of(st.sampled_from(TRICKY), st.text(max_size=30), st.integers().map(str),
                   st.decimals(allow_nan=True).map(str))
queries = st.dictionaries(st.sampled_from(NAMES), values, max_size=len(NAMES))


@given(queries)
def test_any_query_loads_within_range_or_fails_with_field_messages(query):
    try:
        loaded = ProductSearchSchema().load(query)
    except ValidationError as error:
        assert isinstance(error.messages, dict) and error.messages
        assert set(error.messages) <= set(NAMES), error.messages
        return
    assert 1 <= loaded["page"] <= MAX_PAGE and 1 <= loaded["page_size"] <= MAX_PAGE_SIZE
    assert loaded["sort"] in PRODUCT_SORTS and "other" not in loaded
    for bound in ("min_price", "max_price"):
        if bound in loaded:
            assert isinstance(loaded[bound], Decimal) and loaded[bound] >= 0
    if "min_price" in loaded and "max_price" in loaded:
        assert loaded["min_price"] <= loaded["max_price"]
    assert loaded.get("category_id", 1) >= 1 and len(loaded.get("q", "")) <= 200


@given(st.sampled_from(PRODUCT_SORTS), st.integers(1, MAX_PAGE_SIZE), st.integers(1, 1000))
def test_valid_queries_always_load(sort, page_size, page):
    loaded = ProductSearchSchema().load({"sort": sort, "page_size": str(page_size), "page": str(page)})

    assert (loaded["sort"], loaded["page_size"], loaded["page"]) == (sort, page_size, page)
