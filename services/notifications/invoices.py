"""Invoices: the PDF (reportlab) and where it is kept — S3 (boto3) or, by default, a local folder.

Every stored invoice is handed out as a URL that expires: a presigned S3 URL, or for the local folder a gateway
URL carrying a signed token that ``InvoiceStore.open_token`` checks before the gateway serves the file.
"""

import io
import os
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, partial
from pathlib import Path

import jwt
from nameko.extensions import DependencyProvider
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, Spacer, Table, TableStyle

from common.errors import Forbidden, NotFound
from services.notifications.channels import setting
from services.notifications.fonts import BOLD, REGULAR, invoice_fonts, markup

CENTS = Decimal("0.01")
TOKEN_AUDIENCE = "invoice-download"
ALIGNMENTS = {"LEFT": TA_LEFT, "RIGHT": TA_RIGHT}


def money(value):
    return Decimal(str(value)).quantize(CENTS, rounding=ROUND_HALF_UP)


def tax_breakdown(total, rate):
    """Catalogue prices include tax: split the paid total into net and tax, so the total stays what was paid."""
    total, rate = money(total), Decimal(str(rate or 0))
    if rate <= 0:
        return None
    net = money(total / (1 + rate))
    return {"rate": rate, "net": net, "tax": total - net}


def shop_details():
    return {
        "name": setting("SHOP_NAME", "Product Order Service Shop"),
        "address": setting("SHOP_ADDRESS", ""),
        "email": setting("SHOP_EMAIL", setting("MAIL_FROM", "")),
        "tax_id": setting("SHOP_TAX_ID", ""),
        "tax_rate": setting("INVOICE_TAX_RATE", 0),
        "tax_label": setting("INVOICE_TAX_LABEL", "VAT"),
    }


COLUMNS = (("SKU", 34, "LEFT"), ("Item", 66, "LEFT"), ("Qty", 14, "RIGHT"), ("Unit price", 33, "RIGHT"),
           ("Amount", 33, "RIGHT"))  # millimetres: the table spans A4 between 10 mm margins
MARGIN, BOTTOM = 10 * mm, 18 * mm
FRAME = Frame(MARGIN, BOTTOM, A4[0] - 2 * MARGIN, A4[1] - MARGIN - BOTTOM, leftPadding=0, rightPadding=0,
              topPadding=0, bottomPadding=0)
LINE = ParagraphStyle("line", fontName=REGULAR, fontSize=10, leading=6 * mm)
HEADING = ParagraphStyle("heading", LINE, fontName=BOLD)
CELL = ParagraphStyle("cell", LINE, fontSize=9, leading=11)
CELL_STYLES = {(heading, align): ParagraphStyle(f"cell-{align}-{heading}", CELL, alignment=ALIGNMENTS[align],
                                                fontName=BOLD if heading else REGULAR)
               for heading in (True, False) for align in ("LEFT", "RIGHT")}
SUBTOTAL = ParagraphStyle("subtotal", LINE, alignment=TA_RIGHT)
TOTAL = ParagraphStyle("total", HEADING, alignment=TA_RIGHT)
TABLE = TableStyle([("LINEABOVE", (0, 0), (-1, 0), 0.4, colors.black), ("LINEBELOW", (0, 0), (-1, -1), 0.4,
                    colors.black), ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 2),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 2)])


def render_invoice_pdf(order, number, issued_at, shop):
    invoice_fonts()
    buffer = io.BytesIO()
    document = BaseDocTemplate(buffer, pagesize=A4, title=f"Invoice {number}", author=str(shop["name"]))
    document.addPageTemplates(PageTemplate(frames=[FRAME]))
    story = [*header(order, number, issued_at, shop), lines_table(order), Spacer(0, 3 * mm), totals(order, shop)]
    document.build(story, canvasmaker=partial(NumberedCanvas, number))
    return buffer.getvalue()


def line(text, size=10, bold=False):
    return Paragraph(markup(text, BOLD if bold else REGULAR), line_style(size, bold))


@cache
def line_style(size, bold):
    return ParagraphStyle(f"line-{size}-{bold}", HEADING if bold else LINE, fontSize=size,
                          leading=max(LINE.leading, size * 1.3))


def header(order, number, issued_at, shop):
    story = [line(shop["name"], size=16, bold=True)]
    for text in [*str(shop["address"] or "").split("\n"), shop["email"],
                 f"Tax ID: {shop['tax_id']}" if shop["tax_id"] else ""]:
        if text:
            story.append(line(text))
    story += [Spacer(0, 4 * mm), line(f"Invoice {number}", size=14, bold=True), line(f"Date: {issued_at:%Y-%m-%d}"),
              line(f"Order: #{order['id']}"), Spacer(0, 2 * mm), line("Bill to:", bold=True)]
    address = order.get("shipping_address") or {}
    city = " ".join(str(address.get(k) or "") for k in ("postal_code", "city")).strip()
    for text in (address.get("name"), address.get("line1"), address.get("line2"), city, address.get("country")):
        if text:
            story.append(line(text))
    return [*story, Spacer(0, 4 * mm)]


def lines_table(order):
    """The items: long SKUs and names wrap inside their cells, and the header repeats on every page."""
    currency = order.get("currency", "")
    rows = [[title for title, *_ in COLUMNS]]
    for item in order.get("items", []):
        rows.append([str(item.get("sku", "")), str(item.get("name", "")), str(item["quantity"]),
                     f"{money(item['unit_price'])} {currency}", f"{money(item['line_total'])} {currency}"])
    cells = [[cell(text, align, heading=index == 0) for text, (_, _, align) in zip(row, COLUMNS, strict=True)]
             for index, row in enumerate(rows)]
    return Table(cells, colWidths=[width * mm for _, width, _ in COLUMNS], repeatRows=1, style=TABLE, hAlign="LEFT")


def cell(text, align, heading):
    return Paragraph(markup(text, BOLD if heading else REGULAR), CELL_STYLES[(heading, align)])


def totals(order, shop):
    currency = order.get("currency", "")
    rows = []
    taxes = tax_breakdown(order["total"], shop["tax_rate"])
    if taxes:
        percent = (taxes["rate"] * 100).normalize()
        rows += [("Net amount", taxes["net"]), (f"{shop['tax_label']} {percent:f}%", taxes["tax"])]
    rows.append(("Total", money(order["total"])))
    cells = [[Paragraph(markup(text), TOTAL if label == "Total" else SUBTOTAL)
              for text in (label, f"{amount} {currency}")] for label, amount in rows]
    widths = [sum(width for _, width, _ in COLUMNS[:-1]) * mm, COLUMNS[-1][1] * mm]
    return Table(cells, colWidths=widths, hAlign="LEFT", style=[("LEFTPADDING", (0, 0), (-1, -1), 0),
                                                                  ("RIGHTPADDING", (0, 0), (-1, -1), 2),
                                                                  ("TOPPADDING", (0, 0), (-1, -1), 0),
                                                                  ("BOTTOMPADDING", (0, 0), (-1, -1), 0)])


class NumberedCanvas(canvas.Canvas):
    """Holds the pages back until the end, so that every footer can say how many there are."""

    def __init__(self, number, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.number, self.pages = number, []

    def showPage(self):  # noqa: N802 (reportlab's name)
        self.pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        count = len(self.pages)
        for page in self.pages:
            self.__dict__.update(page)
            self.setFont(REGULAR, 8)
            self.drawCentredString(A4[0] / 2, 10 * mm, f"Invoice {self.number} - page {self._pageNumber}/{count}")
            super().showPage()
        super().save()


class LocalFolderStore:
    """Development default: files under ``INVOICE_DIR``; links go through the gateway with a signed token."""

    def __init__(self, folder, secret, base_url):
        self.folder, self.secret, self.base_url = Path(folder), secret, base_url.rstrip("/")

    def put(self, key, content):
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".part")
        temporary.write_bytes(content)
        os.replace(temporary, path)  # a reader never sees half a PDF

    def delete(self, key):
        self.path(key).unlink(missing_ok=True)

    def get(self, key):
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("The invoice file is missing.", code="invoice_not_found") from None

    def path(self, key):
        return self.folder / key

    def url(self, key, ttl):
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=int(ttl))
        token = jwt.encode({"key": key, "exp": expires_at, "aud": TOKEN_AUDIENCE}, self.secret, algorithm="HS256")
        return f"{self.base_url}/invoices/{token}", expires_at

    def open_token(self, token):
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], audience=TOKEN_AUDIENCE)
        except jwt.ExpiredSignatureError:
            raise Forbidden("This invoice link has expired.", code="link_expired") from None
        except jwt.InvalidTokenError:
            raise Forbidden("This invoice link is not valid.", code="invalid_link") from None
        return claims["key"]


class S3Store:
    def __init__(self, bucket, client):
        self.bucket, self.client = bucket, client

    def put(self, key, content):
        self.client.put_object(Bucket=self.bucket, Key=key, Body=content, ContentType="application/pdf",
                               **server_side_encryption())

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def get(self, key):
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def url(self, key, ttl):
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=int(ttl))
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(ttl))
        return url, expires_at

    def open_token(self, token):
        raise NotFound("Invoices are served from S3, not through the gateway.", code="invoice_not_found")


def server_side_encryption():
    """``S3_SERVER_SIDE_ENCRYPTION``: ``AES256`` (S3-managed keys, the default) or ``aws:kms`` (with
    ``S3_KMS_KEY_ID``, else the bucket's default KMS key)."""
    mode = setting("S3_SERVER_SIDE_ENCRYPTION") or "AES256"
    options = {"ServerSideEncryption": mode}
    if mode == "aws:kms" and setting("S3_KMS_KEY_ID"):
        options["SSEKMSKeyId"] = setting("S3_KMS_KEY_ID")
    return options


def make_s3_client():
    import boto3
    from botocore.config import Config

    endpoint = setting("S3_ENDPOINT_URL")
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=setting("S3_REGION", "us-east-1"),
        aws_access_key_id=setting("S3_ACCESS_KEY_ID"), aws_secret_access_key=setting("S3_SECRET_ACCESS_KEY"),
        config=Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"},
                      s3={"addressing_style": "path" if endpoint else "auto"}),
    )


def make_store():
    bucket = setting("S3_BUCKET")
    if bucket:
        return S3Store(bucket, make_s3_client())
    secret = setting("INVOICE_URL_SECRET") or setting("JWT_SECRET")
    return LocalFolderStore(setting("INVOICE_DIR", "var/invoices"), secret,
                            setting("PUBLIC_BASE_URL", "http://127.0.0.1:8000"))


class InvoiceStore(DependencyProvider):
    def setup(self):
        self.store = make_store()

    def get_dependency(self, worker_ctx):
        return self.store
