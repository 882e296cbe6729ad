"""The ``pos.inventory.v1.Inventory`` methods: check the caller, call the inventory service, answer.

No stock rule lives here (the gateway pattern): the ledger, its checks and its ``stock.*`` events are the inventory
service's, reached over RPC exactly as the HTTP stock routes reach them (a product must exist in the catalogue to
have its stock set or adjusted). Each blocking RPC runs in a thread, so the server's event loop only moves bytes.
"""

import asyncio
import logging

import grpc

from common.errors import (
    Conflict,
    DependencyUnavailable,
    DomainError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from inventory_grpc import protos
from inventory_grpc.feed import StreamEnded

log = logging.getLogger(__name__)
pb, pb_grpc = protos()

MAX_PRODUCT_IDS = 1000
STATUS = [(Unauthorized, grpc.StatusCode.UNAUTHENTICATED), (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
          (NotFound, grpc.StatusCode.NOT_FOUND), (ValidationFailed, grpc.StatusCode.INVALID_ARGUMENT),
          (Conflict, grpc.StatusCode.FAILED_PRECONDITION), (DependencyUnavailable, grpc.StatusCode.UNAVAILABLE)]


class Inventory(pb_grpc.InventoryServicer):
    def __init__(self, inventory, products, auth, streams, executor, write_timeout):
        self.inventory = inventory
        self.products = products
        self.auth = auth
        self.streams = streams
        self.executor = executor
        self.write_timeout = write_timeout

    async def GetAvailability(self, request, context):
        ids = await self.admitted(context, lambda: product_ids(request.product_ids, required=True))
        levels = await self.call(context, self.levels, ids)
        return pb.GetAvailabilityResponse(levels=[message(level) for level in levels])

    async def AdjustStock(self, request, context):
        await self.admitted(context)
        level = await self.call(context, self.adjust, request)
        return message(level)

    async def SetStock(self, request, context):
        await self.admitted(context)
        threshold = request.low_stock_threshold if request.HasField("low_stock_threshold") else None
        level = await self.call(context, self.set_stock, request.product_id, request.on_hand, threshold)
        return message(level)

    async def WatchStock(self, request, context):
        ids = await self.admitted(context, lambda: product_ids(request.product_ids, required=False))
        try:
            stream = self.streams.add(set(ids) if ids else None)
        except StreamEnded as ended:
            await context.abort(ended.code, ended.message)
        try:
            await self.watch(context, stream, ids, dict(request.after_versions))
        except StreamEnded as ended:
            await context.abort(ended.code, ended.message)
        finally:
            self.streams.remove(stream)

    # -- the calls behind the methods (blocking: run in the executor)
    def levels(self, ids):
        levels = self.inventory.get_stock_levels(ids, with_version=True)
        missing = sorted(set(ids) - {level["product_id"] for level in levels})
        if missing:
            raise NotFound(f"No stock for products {', '.join(map(str, missing))}.", code="stock_not_found")
        return levels

    def adjust(self, request):
        self.products.get_product(request.product_id)  # NOT_FOUND for an unknown or deleted product
        return self.inventory.adjust_stock(request.product_id, request.delta, request.reason,
                                           request.idempotency_key)

    def set_stock(self, product_id, on_hand, threshold):
        self.products.get_product(product_id)
        self.inventory.set_stock(product_id, on_hand, threshold)
        return self.levels([product_id])[0]

    # -- streaming
    async def watch(self, context, stream, ids, seen):
        if ids:  # the current levels first: a new or resumed stream starts from what is there now
            for level in await self.call(context, self.levels, ids):
                await self.send(context, stream, {**level, "change": ""}, seen)
        while True:
            await self.send(context, stream, await stream.next(), seen)

    async def send(self, context, stream, level, seen):
        if level["version"] <= seen.get(level["product_id"], 0):
            return  # already sent (the stream's current levels raced a change), or seen before a resume
        seen[level["product_id"]] = level["version"]
        try:
            await asyncio.wait_for(context.write(message(level)), self.write_timeout)
        except TimeoutError:
            raise StreamEnded(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"The client read nothing for {self.write_timeout:g}s; resume with "
                              "after_versions.") from None

    # -- checks and errors
    async def admitted(self, context, validate=None):
        """Check the caller (an admin), then the request; abort with the matching status otherwise."""
        metadata = context.invocation_metadata() or ()
        await self.call(context, self.auth.admin, metadata)
        return await self.call(context, lambda: validate() if validate else None)

    async def call(self, context, function, *args):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, function, *args)
        except DomainError as error:
            await context.abort(status_of(error), readable(error))
        except Exception:
            log.exception("inventory gRPC call failed")
            await context.abort(grpc.StatusCode.INTERNAL, "Something went wrong on our side.")


def product_ids(values, required):
    ids = list(dict.fromkeys(values))
    if required and not ids:
        raise ValidationFailed("product_ids: name at least one product.")
    if len(ids) > MAX_PRODUCT_IDS:
        raise ValidationFailed(f"product_ids: at most {MAX_PRODUCT_IDS} products at once.")
    if any(value < 1 for value in ids):
        raise ValidationFailed("product_ids: every id is a positive integer.")
    return ids


def status_of(error):
    return next((status for kind, status in STATUS if isinstance(error, kind)), grpc.StatusCode.INVALID_ARGUMENT)


def readable(error):
    """The error's message and, for a validation error, which field is wrong and why."""
    details = error.details if isinstance(error, ValidationFailed) else {}
    problems = "; ".join(f"{field}: {' '.join(map(str, why)) if isinstance(why, list) else why}"
                         for field, why in details.items())
    return f"{error.message} ({problems})" if problems else error.message


def message(level):
    return pb.StockLevel(product_id=level["product_id"], on_hand=level["on_hand"], reserved=level["reserved"],
                         available=level["available"], low_stock_threshold=level.get("low_stock_threshold") or 0,
                         version=level.get("version", 0), change=level.get("change", ""))
