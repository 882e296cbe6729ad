"""Load data into a running system.

- ``--demo``: a few categories and ~50 products with stock, through the public HTTP API as the admin (skipped when
  the catalogue already has products). Used by `make run`.
- ``--products N``: a large catalogue (``make seed N=100000``) straight over RPC, many calls in flight, with a
  progress bar.
"""

import argparse
import random
import sys

import requests
from tqdm import tqdm

CATEGORIES = {
    "Coffee": ["Espresso Beans", "Filter Coffee", "Decaf Blend", "Cold Brew Pack", "Single Origin Kenya",
               "Single Origin Colombia", "Coffee Sampler", "Organic Dark Roast", "Mocha Java", "House Blend"],
    "Tea": ["Green Tea", "Earl Grey", "Chamomile", "Matcha Powder", "Oolong", "Rooibos", "Chai Spice",
            "English Breakfast", "Jasmine Pearls", "Peppermint"],
    "Brewing": ["French Press", "Pour-over Dripper", "Burr Grinder", "Gooseneck Kettle", "Moka Pot",
                "Paper Filters", "Cold Brew Jar", "Milk Frother", "Digital Scale", "Espresso Tamper"],
    "Mugs": ["Ceramic Mug", "Travel Mug", "Double-wall Glass", "Espresso Cups", "Latte Bowl",
             "Enamel Camp Mug", "Tea Cup Set", "Insulated Tumbler", "Stoneware Mug", "Cappuccino Cup"],
    "Snacks": ["Almond Biscotti", "Dark Chocolate Bar", "Shortbread Tin", "Oat Cookies", "Honey Waffles",
               "Caramel Stroopwafel", "Ginger Snaps", "Lemon Cake", "Hazelnut Praline", "Sea Salt Crackers"],
}


def admin_session(base_url, email, password, timeout=10):
    """A requests session logged in as ``email`` (a bearer token on every request)."""
    session = requests.Session()
    reply = session.post(f"{base_url}/auth/token", json={"email": email, "password": password}, timeout=timeout)
    reply.raise_for_status()
    session.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
    return session


def seed_demo(base_url, email, password):
    if requests.get(f"{base_url}/products", timeout=10).json().get("total", 0) > 0:
        print("demo data: the catalogue already has products; leaving it as it is")
        return
    session = admin_session(base_url, email, password)
    rng = random.Random(42)
    count = sum(len(names) for names in CATEGORIES.values())
    with tqdm(total=count, desc="demo products", unit="product") as bar:
        for category_name, names in CATEGORIES.items():
            reply = session.post(f"{base_url}/categories", json={
                "name": category_name, "description": f"All things {category_name.lower()}"}, timeout=10)
            reply.raise_for_status()
            category_id = reply.json()["id"]
            for index, name in enumerate(names):
                sku = f"{category_name[:3].upper()}-{index + 1:03d}"
                product = {
                    "sku": sku, "name": name, "description": f"{name} from our {category_name.lower()} range",
                    "price": f"{rng.uniform(2, 80):.2f}", "currency": "USD", "category_id": category_id,
                    "initial_stock": rng.choice([0, 3, 10, 25, 50, 100]),
                }
                session.post(f"{base_url}/products", json=product, timeout=10).raise_for_status()
                bar.update(1)


def seed_many(count, batch):
    from nameko.standalone.rpc import ClusterRpcClient

    rng = random.Random(7)
    words = ["Classic", "Organic", "Premium", "Smoky", "Bright", "Velvet", "Roasted", "Wild", "Golden", "Midnight"]
    nouns = ["Blend", "Roast", "Brew", "Leaf", "Cup", "Grinder", "Kettle", "Biscuit", "Bar", "Jar"]
    with ClusterRpcClient() as rpc:
        category_id = rpc.products.create_category({"name": f"Bulk {rng.randrange(10**9)}"})["id"]
        prefix = f"BULK{rng.randrange(10**6):06d}"
        with tqdm(total=count, desc="products", unit="product") as bar:
            for start in range(0, count, batch):
                pending = []
                for number in range(start, min(start + batch, count)):
                    product = {
                        "sku": f"{prefix}-{number:07d}",
                        "name": f"{rng.choice(words)} {rng.choice(nouns)} {number}",
                        "description": f"Bulk product number {number}",
                        "price": f"{rng.uniform(1, 500):.2f}", "category_id": category_id,
                        "initial_stock": rng.randrange(0, 200),
                    }
                    pending.append(rpc.products.create_product.call_async(product))
                for reply in pending:
                    reply.result()
                    bar.update(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config/dev.yml")
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--products", type=int, default=0)
    parser.add_argument("--batch", type=int, default=50, help="RPC calls in flight at once")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    args = parser.parse_args(argv)

    import eventlet

    eventlet.monkey_patch()
    from nameko.cli.utils.config import setup_config

    with open(args.config) as handle:
        settings = setup_config(handle)
    if args.demo:
        seed_demo(args.base_url, settings["ADMIN_EMAIL"], settings["ADMIN_PASSWORD"])
    if args.products:
        seed_many(args.products, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
