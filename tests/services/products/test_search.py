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


def search(rpc, q):
    return set(names(rpc.search_products({"q": q})))


def test_text_search_matches_name_description_and_sku_ignoring_case(rpc, catalogue):
    assert search(rpc, "LAMP") == {"desk Lamp", "Floor lamp", "ceiling light"}
    assert names(rpc.search_products({"q": "lmp-2"})) == ["Floor lamp"]
    assert names(rpc.search_products({"q": "oak"})) == ["bench"]
    assert names(rpc.search_products({"q": "100%"})) == ["100% cotton throw"]
    assert rpc.search_products({"q": "nothing like it"}) == {"items": [], "page": 1, "page_size": 20, "total": 0,
                                                           "total_exact": True}


def test_each_word_must_begin_a_word(rpc, catalogue):
    assert search(rpc, "lam") == {"desk Lamp", "Floor lamp", "ceiling light"}
    assert search(rpc, "ceil") == {"ceiling light"}
    assert search(rpc, "ligh") == {"desk Lamp", "ceiling light"}  # "Warm light for the desk"
    assert search(rpc, "cott") == {"100% cotton throw"}
    assert search(rpc, "amp") == search(rpc, "ight") == search(rpc, "otton") == set()  # inside a word
    assert search(rpc, "lamps") == set()  # longer than every word


def test_several_words_must_all_match_in_any_column(rpc, catalogue):
    assert search(rpc, "lamp desk") == {"desk Lamp"}
    assert search(rpc, "FLOOR lamp") == search(rpc, "lamp   floor") == {"Floor lamp"}
    assert search(rpc, "lmp light") == {"desk Lamp"}  # sku LMP-1, "light" in the description
    assert search(rpc, "lamp oak") == set()
    assert search(rpc, "lamp lamp LAMP") == {"desk Lamp", "Floor lamp", "ceiling light"}


def test_case_is_ignored(rpc, catalogue):
    assert search(rpc, "lAmP") == search(rpc, "lamp") == {"desk Lamp", "Floor lamp", "ceiling light"}
    assert search(rpc, "ARMCHAIR") == search(rpc, "armchair") == {"Armchair"}


def test_skus_split_into_words(rpc, catalogue):
    assert search(rpc, "lmp") == {"desk Lamp", "Floor lamp"}
    assert search(rpc, "clg-1") == search(rpc, "CLG 1") == {"ceiling light"}
    assert search(rpc, "1") == {"desk Lamp", "ceiling light", "Armchair", "bench", "100% cotton throw"}
    assert search(rpc, "thr") == {"100% cotton throw"}


def test_short_words_are_word_prefixes_too(rpc, catalogue):
    assert search(rpc, "a") == {"Armchair", "ceiling light"}  # "A LAMP without a stand"
    assert search(rpc, "fl") == {"Floor lamp"}
    assert search(rpc, "de") == {"desk Lamp"}
    assert search(rpc, "ak") == search(rpc, "mp") == set()  # inside "Oak", "Lamp"
    assert search(rpc, "a lamp") == {"ceiling light"}


def test_stopwords_and_words_that_begin_one_still_match(rpc, catalogue):
    rpc.create_product({"name": "All about tea", "sku": "TEA-9", "description": "The pick of the leaves",
                        "price": "3"})
    assert search(rpc, "the") == {"desk Lamp", "All about tea"}
    assert search(rpc, "about") == search(rpc, "abo") == search(rpc, "ABOUT tea") == {"All about tea"}
    assert search(rpc, "with") == search(rpc, "wit") == {"ceiling light"}  # "without"
    assert search(rpc, "for the desk") == {"desk Lamp"}
    assert search(rpc, "the leaves") == {"All about tea"}
    assert search(rpc, "the oak") == set()


OPERATOR_QUERIES = ['+lamp', '-lamp', 'lamp*', '"lamp"', '(lamp)', '~lamp', '@lamp', '<lamp', '>lamp', 'lamp)',
                    '"lamp', "lamp'", '^lamp', '*lamp', 'lamp:', '{lamp}', '[lamp]', '%lamp%', '_lamp', 'lamp\\']


def test_operator_characters_are_never_operators(rpc, catalogue):
    lamps = {"desk Lamp", "Floor lamp", "ceiling light"}
    for q in OPERATOR_QUERIES:
        assert search(rpc, q) == lamps, q
    assert search(rpc, "lamp -desk") == search(rpc, '"desk lamp"') == search(rpc, "desk:lamp") == {"desk Lamp"}
    assert search(rpc, "desk@lamp") == search(rpc, "lamp&&desk") == {"desk Lamp"}
    assert search(rpc, "lamp OR oak") == search(rpc, "NEAR(lamp oak)") == search(rpc, "oak | lamp") == set()
    assert search(rpc, "(+desk) >lamp <floor") == set()


def test_a_query_without_words_matches_nothing(rpc, catalogue):
    for q in ('%', '_', '+', '-', '*', '"', '()', '~@<>', '+-*"()~@<>', "'", '\\', '!?'):
        assert rpc.search_products({"q": q})["total"] == 0, q


def test_text_search_pages_and_sorts_like_any_search(rpc, catalogue):
    query = {"q": "lamp", "sort": "-price", "page_size": "2"}
    pages = [rpc.search_products({**query, "page": str(n)}) for n in (1, 2, 3)]
    assert [(p["page"], p["total"], names(p)) for p in pages] == [
        (1, 3, ["Floor lamp", "ceiling light"]), (2, 3, ["desk Lamp"]), (3, 3, [])]
    assert names(rpc.search_products({"q": "lamp", "sort": "name"})) == ["ceiling light", "desk Lamp", "Floor lamp"]
    cheap = rpc.search_products({"q": "1", "sort": "price", "max_price": "25", "in_stock": "true"})
    assert (cheap["total"], names(cheap)) == (2, ["desk Lamp", "100% cotton throw"])
    assert cheap["items"][0] == rpc.get_product(cheap["items"][0]["id"])
    assert rpc.search_products({"q": "+", "page": "2"})["total"] == 0


def test_changes_and_deletes_change_what_search_finds(rpc, catalogue):
    shelf = rpc.create_product({"name": "Walnut shelf", "sku": "SHF-1", "description": "Wall mounted",
                                "price": "80"})
    assert search(rpc, "walnut") == search(rpc, "shf") == search(rpc, "wall") == {"Walnut shelf"}

    rpc.update_product(shelf["id"], {"name": "Cherry shelf", "sku": "CAB-7", "description": None})
    assert search(rpc, "walnut") == search(rpc, "shf") == search(rpc, "wall") == set()
    assert search(rpc, "cherry") == search(rpc, "cab-7") == {"Cherry shelf"}

    rpc.update_product(shelf["id"], {"description": "Solid wood"})
    assert search(rpc, "solid wood cherry") == {"Cherry shelf"}

    rpc.delete_product(shelf["id"])
    assert search(rpc, "cherry") == search(rpc, "solid") == set()


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
