"""Money (schemas/common.py) for any input: a decimal string or number loads to exactly two places with no float
artefacts; NaN, infinities, overflow and anything else non-numeric are validation errors, never crashes. The
hand-built product document dumps money (and the rest) exactly as ProductSchema does."""

import datetime as dt
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from schemas.common import MONEY_LIMIT, Money
from schemas.products import ProductSchema, product_document

CENTS = Decimal("0.01")
TWO_PLACES = re.compile(r"^-?[0-9]+\.[0-9]{2}$")


class PriceSchema(Schema):
    price = Money()


def load(value):
    return PriceSchema().load({"price": value})["price"]


def dump(amount):
    return PriceSchema().dump({"price": amount})["price"]


def cents(value):
    return Decimal(value).quantize(CENTS, rounding=ROUND_HALF_UP)


in_range = st.decimals(min_value=-MONEY_LIMIT + 1, max_value=MONEY_LIMIT - 1, allow_nan=False,
                       allow_infinity=False)


@given(in_range)
def test_any_decimal_string_loads_to_exactly_two_places(amount):
    loaded = load(str(amount))

    assert loaded == cents(amount)
    assert loaded.as_tuple().exponent == -2
    assert TWO_PLACES.match(dump(loaded)) and dump(loaded) != "-0.00"


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_floats_load_as_their_shortest_decimal_never_a_binary_artefact(number):
    loaded = load(number)

    assert loaded == cents(repr(number))  # 0.1 is "0.10", never 0.1000000000000000055511151231257827
    assert TWO_PLACES.match(dump(loaded))


@given(st.integers(min_value=-(10**10) + 1, max_value=10**10 - 1))
def test_integers_gain_two_zero_places(number):
    assert dump(load(number)) == f"{number}.00" if number else dump(load(number)) == "0.00"


@given(st.one_of(st.sampled_from(["NaN", "nan", "-NaN", "sNaN", "Infinity", "-inf", "inf", "1e400", "-1e400",
                                  "9999999999.995", "10000000000", "1e10", "", "  ", "1,5", "$5", "0x10", "½"]),
                 st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.just(1e300), st.just(True)))
def test_nan_infinity_overflow_and_junk_are_refused(value):
    try:
        load(value)
    except ValidationError as error:
        assert set(error.messages) == {"price"}
    else:
        raise AssertionError(f"{value!r} was accepted")


@given(st.one_of(st.text(max_size=40), st.floats(), st.integers(), st.decimals(), st.booleans(), st.none(),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                      max_size=2)))
def test_anything_else_loads_to_valid_money_or_a_validation_error(value):
    try:
        loaded = load(value)
    except ValidationError:
        return
    assert loaded.is_finite() and abs(loaded) < MONEY_LIMIT and loaded.as_tuple().exponent == -2


@given(st.builds(
    SimpleNamespace, id=st.integers(1, 2**63 - 1), sku=st.text(max_size=64), name=st.text(max_size=200),
    description=st.none() | st.text(), price=st.decimals(min_value=0, max_value=MONEY_LIMIT - CENTS, places=2),
    currency=st.sampled_from(["USD", "EUR"]), category_id=st.none() | st.integers(1, 2**63 - 1),
    available=st.integers(0, 2**31 - 1),
    created_at=st.datetimes(), updated_at=st.datetimes(timezones=st.none() | st.just(dt.UTC))))
def test_the_hand_built_product_document_is_the_schemas_dump(product):
    assert product_document(product) == ProductSchema().dump(product)
