"""Domain errors survive Nameko's exception serialisation with their class, code and typed details."""

from nameko.exceptions import deserialize, serialize

from common.errors import Conflict, DomainError, NotFound


def test_details_keep_their_types_across_rpc_serialisation():
    error = Conflict("Not enough stock", details={"products": [{"product_id": 7, "requested": 3}]},
                     code="insufficient_stock")

    back = deserialize(serialize(error))

    assert type(back) is Conflict and back.status == 409
    assert back.code == "insufficient_stock"
    assert back.details == {"products": [{"product_id": 7, "requested": 3}]}
    assert back.to_dict()["message"] == "Not enough stock"


def test_default_code_and_empty_details():
    back = deserialize(serialize(NotFound("No such product")))
    assert isinstance(back, DomainError)
    assert (back.code, back.details, str(back)) == ("not_found", {}, "No such product")
