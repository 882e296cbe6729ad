"""A paid order's invoice: a link that expires, and the download behind links to the local-folder store."""

import base64

from werkzeug.wrappers import Response

from gateway.http import api
from gateway.routes.orders import own_order
from schemas.notifications import InvoiceLinkSchema


class InvoiceRoutes:
    """Needs ``orders_rpc`` and ``notifications_rpc`` on the service."""

    @api("GET", "/orders/<int:order_id>/invoice", auth="user", responses={200: InvoiceLinkSchema},
         summary="Link to the PDF invoice of a paid order", tags=["Orders"],
         description="A presigned S3 URL (or a signed gateway URL in development) valid until `expires_at`; "
                     "404 `invoice_not_found` until the order is paid.")
    def get_invoice(self, request, order_id, user):
        own_order(self.orders_rpc.get_order(order_id), user)
        return self.notifications_rpc.get_invoice(order_id)

    @api("GET", "/invoices/<token>", responses={200: "application/pdf", 403: None},
         summary="Download an invoice PDF through a signed link", tags=["Orders"],
         description="The URL `GET /orders/{id}/invoice` hands out when invoices are kept in a local folder; "
                     "the token is the permission, and it expires.")
    def download_invoice(self, request, token):
        invoice = self.notifications_rpc.download_invoice(token)
        return Response(base64.b64decode(invoice["content_base64"]), content_type=invoice["content_type"],
                        headers={"Content-Disposition": f'inline; filename="{invoice["filename"]}"',
                                 "Cache-Control": "private, no-store"})
