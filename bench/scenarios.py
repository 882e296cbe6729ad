"""The four scenarios of issue 8, each against the running system through the gateway (or AMQP for the relay)."""

import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests
from kombu import Connection, Exchange, Queue

from bench.floors import measure
from bench.kafka import percentiles
from bench.processes import wait_until_quiet
from bench.seed import NOUNS, WORDS
from common.timers import wait_for

ADDRESS = {"name": "Bench Customer", "line1": "1 Load Street", "city": "Loopback", "postal_code": "12345",
           "country": "US"}


@dataclass
class SearchPoint:
    products: int
    seed_seconds: float
    results: list = field(default_factory=list)
    light: list = field(default_factory=list)  # the same mixes at light load (the target size only)
    skipped: str = ""


def warm_read(settings, base_url, product_ids, wrk, profile=None):
    """GET /products/{id} over ``product_ids``, every one read once before (cache warm)."""
    with requests.Session() as session:
        for product_id in product_ids:
            session.get(f"{base_url}/products/{product_id}", timeout=10).raise_for_status()
    paths = [("GET", f"/products/{product_id}") for product_id in product_ids]
    return measure("GET /products/{id}, cache warm", base_url, paths, settings, wrk, profile=profile)


def search_requests(category_ids, rng):
    """Two mixes: indexed filters (category, price window, in stock, by price) and a text query (``q``)."""
    filters, text = [], []
    for _ in range(100):
        low = rng.randrange(1, 450)
        filters.append(("GET", f"/products?category_id={rng.choice(category_ids)}&min_price={low}"
                               f"&max_price={low + 50}&in_stock=true&sort=price&page_size=20"))
        text.append(("GET", f"/products?q={rng.choice(WORDS + NOUNS).lower()}&in_stock=true&sort=-price"
                            f"&page={rng.randrange(1, 4)}&page_size=20"))
    return {"filters": filters, "text": text}


def search_at_sizes(settings, catalogue, base_url, wrk, sizes, profile=None, log=print, reindex=None):
    """Grow the catalogue through ``sizes`` and load search at each; a size whose seeding is projected to take
    longer than ``max_seed_seconds`` is skipped with a note. ``reindex()`` runs after each seeding: the seed writes
    the tables directly, past the products service and its text index."""
    points, rng = [], random.Random(5)
    for size in sizes:
        have, rate = catalogue.count(), catalogue.rate
        if rate and (size - have) / rate > settings.max_seed_seconds:
            points.append(SearchPoint(size, 0.0, skipped=(
                f"skipped: seeding {size - have:,} more products would take about {(size - have) / rate:.0f} s "
                f"at the {rate:,.0f} products/s measured (BENCH_MAX_SEED_SECONDS={settings.max_seed_seconds:g})")))
            continue
        log(f"seeding to {size:,} products")
        seconds = catalogue.grow_to(size)
        catalogue.analyze()
        if reindex is not None:
            started = time.monotonic()
            log(f"text index rebuilt at {size:,} products: {reindex()} in {time.monotonic() - started:.0f} s")
        point = SearchPoint(size, seconds)
        for mix, paths in search_requests(catalogue.category_ids, rng).items():
            target = profile if (profile and size == settings.products and mix == "filters") else None
            point.results.append(measure(f"GET /products search ({mix}) at {size:,}", base_url, paths,
                                         settings, wrk, profile=target))
            if size >= settings.products and settings.light_connections > 0:  # the targets at 100k and 1M
                point.light.append(measure(f"GET /products search ({mix}) at {size:,}, light load "
                                           f"(-c{settings.light_connections})", base_url, paths, settings, wrk,
                                           connections=settings.light_connections))
        points.append(point)
    return points


def customer_token(base_url):
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    password = "bench-password-1"
    reply = requests.post(f"{base_url}/auth/register", json={"email": email, "password": password,
                                                               "name": "Bench Customer"}, timeout=30)
    reply.raise_for_status()
    reply = requests.post(f"{base_url}/auth/token", json={"email": email, "password": password}, timeout=30)
    reply.raise_for_status()
    return reply.json()["access_token"]


def order_bodies(product_ids, count=200, seed=3):
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        chosen = rng.sample(product_ids, rng.choice((1, 2)))
        bodies.append({"items": [{"product_id": pid, "quantity": 1} for pid in chosen],
                       "shipping_address": ADDRESS, "payment_token": "tok_visa"})
    return bodies


class OrderEvents(threading.Thread):
    """When each ``order.created`` and ``order.paid`` reached a queue of the bench's own, by order id."""

    def __init__(self, amqp_uri):
        super().__init__(daemon=True)
        self.connection = Connection(amqp_uri)
        exchange = Exchange("orders.events", type="topic", durable=True)
        self.queue = Queue(f"bench-orders-{uuid.uuid4().hex}", exchange=exchange, auto_delete=True,
                           exclusive=True, routing_key="order.*")
        self.seen = {"order.created": {}, "order.paid": {}}
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def on_message(self, body, message):
        kind = (message.delivery_info or {}).get("routing_key")
        if kind in self.seen and isinstance(body, dict):
            self.seen[kind].setdefault(str(body.get("aggregate_id")), time.time())
        message.ack()

    def run(self):
        with self.connection as connection, connection.Consumer(self.queue, callbacks=[self.on_message],
                                                                accept=["json"]):
            self.ready.set()
            while not self.stopping.is_set():
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass

    def time_to_paid_ms(self):
        created, paid = self.seen["order.created"], self.seen["order.paid"]
        return [1000 * (paid[key] - created[key]) for key in paid if key in created]


@dataclass
class OrdersResult:
    load: object = None
    light: object = None  # POST /orders at light load
    created: int = 0
    paid: int = 0
    time_to_paid_ms: dict = field(default_factory=dict)
    skipped: str = ""


def place_orders(settings, base_url, product_ids, wrk, amqp_uri, profile=None, settle_seconds=90, log=print):
    """POST /orders under load; then wait for the saga and time each order from ``order.created`` to
    ``order.paid`` (as both events reach a listener of the bench)."""
    token = customer_token(base_url)
    bodies = order_bodies(product_ids)
    probe = requests.post(f"{base_url}/orders", json=bodies[0], timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    if probe.status_code not in (200, 201):
        return OrdersResult(skipped=f"POST /orders answered {probe.status_code} "
                                    f"({probe.text[:120]}): the orders route is not there yet")
    listener = OrderEvents(amqp_uri)
    listener.start()
    listener.ready.wait(10)
    saved_warmup, settings.warmup = settings.warmup, 0  # every order counts toward time-to-PAID
    try:
        posts = [("POST", "/orders", body) for body in bodies]
        load = measure("POST /orders", base_url, posts, settings, wrk, token=token, profile=profile)
        # the light run measures latency, not the loaded run's backlog (payments, mails, PDFs, the relay)
        wait_for(lambda: len(listener.seen["order.paid"]) >= load.requests - load.errors, settle_seconds)
        if not wait_until_quiet():
            log("orders: the machine was still busy a minute after the loaded run; light run measured anyway")
        light = measure(f"POST /orders, light load (-c{settings.light_connections})", base_url, posts,
                        settings, wrk, token=token, connections=settings.light_connections) \
            if settings.light_connections > 0 else None
    finally:
        settings.warmup = saved_warmup
    created, paid = listener.seen["order.created"], listener.seen["order.paid"]
    expected = sum(run.requests - run.errors for run in (load, light) if run)
    wait_for(lambda: len(created) >= expected and len(paid) >= len(created), settle_seconds)
    listener.stopping.set()
    listener.join(5)
    log(f"orders: {len(created)} created, {len(paid)} paid")
    return OrdersResult(load, light, len(created), len(paid),
                        percentiles(listener.time_to_paid_ms()))
