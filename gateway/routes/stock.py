"""Stock levels of a product (admin)."""

from gateway.http import api
from schemas.gateway import StockLevelInputSchema
from schemas.inventory import StockSchema


class StockRoutes:
    @api("GET", "/products/<int:product_id>/stock", auth="admin", responses={200: StockSchema},
         summary="Stock of a product", tags=["Stock"])
    def get_stock(self, request, product_id):
        self.products_rpc.get_product(product_id)  # 404 for an unknown or deleted product
        return self.inventory_rpc.get_stock(product_id)

    @api("PUT", "/products/<int:product_id>/stock", auth="admin", body=StockLevelInputSchema,
         responses={200: StockSchema}, summary="Set the stock on hand", tags=["Stock"])
    def set_stock(self, request, product_id, body):
        self.products_rpc.get_product(product_id)
        return self.inventory_rpc.set_stock(product_id, body["on_hand"],
                                            body.get("low_stock_threshold"))
