"""Categories and products: public reads, admin writes.

A product read is answered from the products service's own Redis entry when there is one (``products_cache``,
``None`` without Redis): products deletes that entry before any change of the product returns, so a read after
a write misses it and asks products.
"""

from common.cache import MISSING
from gateway.http import api
from gateway.responses import created
from schemas.common import PaginationSchema, page_of, paginated
from schemas.products import (
    CategoryCreateSchema,
    CategorySchema,
    CategoryUpdateSchema,
    ProductCreateSchema,
    ProductPageSchema,
    ProductSchema,
    ProductSearchSchema,
    ProductUpdateSchema,
)

CategoryPageSchema = paginated(CategorySchema, "CategoryPageSchema")


class CatalogueRoutes:
    @api("GET", "/categories", query=PaginationSchema, responses={200: CategoryPageSchema},
         summary="List categories", tags=["Categories"])
    def list_categories(self, request, query):
        categories = self.products_rpc.list_categories()
        start = (query["page"] - 1) * query["page_size"]
        return page_of(categories[start:start + query["page_size"]], query["page"],
                       query["page_size"], len(categories))

    @api("GET", "/categories/<int:category_id>", responses={200: CategorySchema},
         summary="A category", tags=["Categories"])
    def get_category(self, request, category_id):
        return self.products_rpc.get_category(category_id)

    @api("POST", "/categories", auth="admin", body=CategoryCreateSchema,
         responses={201: CategorySchema}, summary="Create a category", tags=["Categories"])
    def create_category(self, request, body):
        category = self.products_rpc.create_category(body)
        return created(category, f"/categories/{category['id']}")

    @api("PATCH", "/categories/<int:category_id>", auth="admin", body=CategoryUpdateSchema,
         responses={200: CategorySchema}, summary="Change a category", tags=["Categories"])
    def update_category(self, request, category_id, body):
        return self.products_rpc.update_category(category_id, body)

    @api("DELETE", "/categories/<int:category_id>", auth="admin", responses={204: None},
         summary="Delete an unused category", tags=["Categories"])
    def delete_category(self, request, category_id):
        self.products_rpc.delete_category(category_id)

    @api("GET", "/products", query=ProductSearchSchema, responses={200: ProductPageSchema},
         summary="Search products", tags=["Products"])
    def search_products(self, request, query):
        return self.products_rpc.search_products(query)

    @api("GET", "/products/<int:product_id>", responses={200: ProductSchema},
         summary="A product", tags=["Products"])
    def get_product(self, request, product_id):
        product = self.products_cache.get(f"product:{product_id}") if self.products_cache is not None else MISSING
        return self.products_rpc.get_product(product_id) if product is MISSING else product

    @api("POST", "/products", auth="admin", body=ProductCreateSchema,
         responses={201: ProductSchema}, summary="Create a product", tags=["Products"])
    def create_product(self, request, body):
        product = self.products_rpc.create_product(body)
        return created(product, f"/products/{product['id']}")

    @api("PATCH", "/products/<int:product_id>", auth="admin", body=ProductUpdateSchema,
         responses={200: ProductSchema}, summary="Change a product", tags=["Products"])
    def update_product(self, request, product_id, body):
        return self.products_rpc.update_product(product_id, body)

    @api("DELETE", "/products/<int:product_id>", auth="admin", responses={204: None},
         summary="Delete a product", tags=["Products"])
    def delete_product(self, request, product_id):
        self.products_rpc.delete_product(product_id)
