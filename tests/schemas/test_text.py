"""Every string the schemas load is Unicode text: a lone surrogate is a validation error, not a 500 later."""

import pytest
from marshmallow import ValidationError

from schemas.accounts import CredentialsSchema, RegisterSchema
from schemas.orders import OrderCreateSchema
from schemas.products import CategoryCreateSchema, ProductCreateSchema

SURROGATE = "\ud800"
ADDRESS = {"name": "Ann", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
CASES = [
    (CredentialsSchema, {"email": "a@b.c", "password": SURROGATE}, "password"),
    (CredentialsSchema, {"email": f"a{SURROGATE}@b.c", "password": "pw"}, "email"),
    (RegisterSchema, {"email": f"a{SURROGATE}@b.co", "password": "long-enough", "name": "Ann"}, "email"),
    (RegisterSchema, {"email": "a@b.co", "password": f"long-enough{SURROGATE}", "name": "Ann"}, "password"),
    (RegisterSchema, {"email": "a@b.co", "password": "long-enough", "name": SURROGATE}, "name"),
    (ProductCreateSchema, {"sku": "A-1", "name": "Mug", "price": "1.00", "description": SURROGATE}, "description"),
    (ProductCreateSchema, {"sku": "A-1", "name": f"Mug{SURROGATE}", "price": "1.00"}, "name"),
    (CategoryCreateSchema, {"name": "Mugs", "description": SURROGATE}, "description"),
]


@pytest.mark.parametrize(("schema", "data", "field"), CASES)
def test_a_lone_surrogate_is_refused(schema, data, field):
    with pytest.raises(ValidationError) as raised:
        schema().load(data)
    assert raised.value.messages[field] == ["Not valid Unicode text."]


def test_an_order_refuses_a_surrogate_in_its_address_and_its_payment_token():
    order = {"items": [{"product_id": 1, "quantity": 1}], "shipping_address": {**ADDRESS, "name": SURROGATE},
             "payment_token": f"tok_{SURROGATE}"}
    with pytest.raises(ValidationError) as raised:
        OrderCreateSchema().load(order)
    assert raised.value.messages["shipping_address"] == {"name": ["Not valid Unicode text."]}
    assert raised.value.messages["payment_token"] == ["Not valid Unicode text."]


def test_text_beyond_the_basic_plane_is_still_text():
    assert CredentialsSchema().load({"email": "a@b.c", "password": "pässwörd 🔑"})["password"] == "pässwörd 🔑"
