"""search_products: every filter, sort and page of API.md, and its validation errors."""

import pytest

from common.errors import ValidationFailed

# name, sku, description, price, initial stock, category
CATALOGUE = [
    ("desk Lamp", "LMP-1", "Warm light for the desk", "19.99", 5, "lights"),
    ("Floor lamp", "LMP-2", None, "49.00", 0, "lights"),
    ("ceiling light", "CLG-1", "A LAMP without a stand", "35.50", 2, "lights"),
    ("Armchair", "CHR-1", "Soft", "149.00", 1, "furniture"),
    ("bench", "BNC-1", "Oak", "19.99", 0, "furniture"),
    ("100% cotton throw", "THR_1", "Blanket", "25.00", 3, None),
]


@pytest.fixture
def catalogue(rpc):
    categories = {name: rpc.create_category({"name": name})["id"] for name in ("lights", "furniture")}
    products = {}
    for name, sku, description, price, stock, category in CATALOGUE:
        products[name] = rpc.create_product({
            "name": name, "sku": sku, "description": description, "price": price, "initial_stock": stock,
            "category_id": categories.get(category)})
    rpc.delete_product(rpc.create_product({"name": "Gone lamp", "sku": "LMP-0", "price": "1"})["id"])
    return categories, products


def names(page):
    return [item["name"] for item in page["items"]]


def test_text_search_matches_name_description_and_sku_ignoring_case(rpc, catalogue):
    assert set(names(rpc.search_products({"q": "LAMP"}))) == {"desk Lamp", "Floor lamp", "ceiling light"}
    assert names(rpc.search_products({"q": "lmp-2"})) == ["Floor lamp"]
    assert names(rpc.search_products({"q": "oak"})) == ["bench"]
    assert names(rpc.search_products({"q": "100%"})) == ["100% cotton throw"]
    assert names(rpc.search_products({"q": "%"})) == ["100% cotton throw"]
    assert names(rpc.search_products({"q": "_"})) == ["100% cotton throw"]
    assert rpc.search_products({"q": "nothing like it"}) == {"items": [], "page": 1, "page_size": 20, "total": 0}


def test_filters_combine(rpc, catalogue):
    categories, products = catalogue
    lights = str(categories["lights"])
    assert names(rpc.search_products({"category_id": lights})) == ["ceiling light", "desk Lamp", "Floor lamp"]
    assert names(rpc.search_products({"min_price": "19.99", "max_price": 35.5})) == [
        "100% cotton throw", "bench", "ceiling light", "desk Lamp"]
    assert names(rpc.search_products({"min_price": "36"})) == ["Armchair", "Floor lamp"]
    assert names(rpc.search_products({"max_price": "19.99"})) == ["bench", "desk Lamp"]
    assert names(rpc.search_products({"in_stock": "true"})) == [
        "100% cotton throw", "Armchair", "ceiling light", "desk Lamp"]
    assert rpc.search_products({"in_stock": "false"})["total"] == len(CATALOGUE)
    assert names(rpc.search_products({"category_id": lights, "in_stock": True, "q": "lamp", "max_price": "30"})) == [
        "desk Lamp"]
    assert rpc.search_products({"category_id": 999})["total"] == 0


def test_sorts_are_stable_in_both_directions(rpc, catalogue):
    _, products = catalogue
    by_id = [product["name"] for product in sorted(products.values(), key=lambda p: p["id"])]
    alphabetical = ["100% cotton throw", "Armchair", "bench", "ceiling light", "desk Lamp", "Floor lamp"]
    assert names(rpc.search_products({})) == alphabetical
    assert names(rpc.search_products({"sort": "name"})) == alphabetical
    assert names(rpc.search_products({"sort": "-name"})) == alphabetical[::-1]
    # desk Lamp and bench cost the same: the older one (lower id) first, and last when descending.
    assert names(rpc.search_products({"sort": "price"})) == [
        "desk Lamp", "bench", "100% cotton throw", "ceiling light", "Floor lamp", "Armchair"]
    assert names(rpc.search_products({"sort": "-price"})) == [
        "Armchair", "Floor lamp", "ceiling light", "100% cotton throw", "bench", "desk Lamp"]
    assert names(rpc.search_products({"sort": "created_at"})) == by_id
    assert names(rpc.search_products({"sort": "-created_at"})) == by_id[::-1]


def test_pages_cover_the_result_once(rpc, catalogue):
    pages = [rpc.search_products({"sort": "price", "page": str(n), "page_size": "4"}) for n in (1, 2, 3)]
    assert [(p["page"], p["page_size"], p["total"], len(p["items"])) for p in pages] == [
        (1, 4, 6, 4), (2, 4, 6, 2), (3, 4, 6, 0)]
    assert names(pages[0]) + names(pages[1]) == names(rpc.search_products({"sort": "price"}))
    assert rpc.search_products({"page_size": 100})["page_size"] == 100
    first = rpc.search_products({"page_size": 1, "in_stock": "1"})
    assert first["total"] == 4 and names(first) == ["100% cotton throw"]
    assert first["items"][0] == rpc.get_product(first["items"][0]["id"])


BAD_PARAMETERS = [
    ({"sort": "popularity"}, {"sort"}),
    ({"sort": "-id", "page": "0", "page_size": "101"}, {"sort", "page", "page_size"}),
    ({"min_price": "cheap", "max_price": "-1", "category_id": "lights"}, {"min_price", "max_price", "category_id"}),
    ({"min_price": "10", "max_price": "9.99"}, {"max_price"}),
    ({"in_stock": "maybe", "page": "two"}, {"in_stock", "page"}),
]


def test_bad_parameters_are_rejected_per_field(rpc):
    for params, fields in BAD_PARAMETERS:
        with pytest.raises(ValidationFailed) as error:
            rpc.search_products(params)
        assert error.value.status == 422 and set(error.value.details) == fields, params
