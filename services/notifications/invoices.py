"""Invoices: the PDF (fpdf2) and where it is kept — S3 (boto3) or, by default, a local folder.

Every stored invoice is handed out as a URL that expires: a presigned S3 URL, or for the local folder a gateway
URL carrying a signed token that ``InvoiceStore.open_token`` checks before the gateway serves the file.
"""

import os
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import jwt
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos
from fpdf.fonts import FontFace
from nameko.extensions import DependencyProvider

from common.errors import Forbidden, NotFound
from services.notifications.channels import setting
from services.notifications.fonts import invoice_fonts

CENTS = Decimal("0.01")
TOKEN_AUDIENCE = "invoice-download"


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
           ("Amount", 33, "RIGHT"))


class InvoicePdf(FPDF):
    def __init__(self, number, fonts):
        super().__init__(format="A4")
        self.number = number
        self.set_title(f"Invoice {number}")
        for (family, style), path in fonts.items():
            self.add_font(family, style, path)
        if ("DroidFallback", "") in fonts:
            self.add_font("DroidFallback", "B", fonts[("DroidFallback", "")])
            self.set_fallback_fonts(["DroidFallback"], exact_match=False)
        self.set_auto_page_break(True, margin=18)

    def footer(self):
        self.set_y(-14)
        self.set_font("DejaVu", size=8)
        self.cell(0, 6, f"Invoice {self.number} - page {self.page_no()}/{{nb}}", align="C")


def render_invoice_pdf(order, number, issued_at, shop):
    pdf = InvoicePdf(number, invoice_fonts(order, number, shop))
    write_invoice(pdf, order, number, issued_at, shop)
    return bytes(pdf.output())


def write_invoice(pdf, order, number, issued_at, shop):
    pdf.add_page()
    write_header(pdf, order, number, issued_at, shop)
    write_lines(pdf, order)
    write_totals(pdf, order, shop)


def line(pdf, text, size=10, style=""):
    pdf.set_font("DejaVu", style=style, size=size)
    pdf.multi_cell(0, 6, str(text if text is not None else ""), new_x=XPos.LMARGIN, new_y=YPos.NEXT,
                   wrapmode=WrapMode.CHAR)


def write_header(pdf, order, number, issued_at, shop):
    line(pdf, shop["name"], size=16, style="B")
    for text in [*str(shop["address"] or "").split("\n"), shop["email"],
                 f"Tax ID: {shop['tax_id']}" if shop["tax_id"] else ""]:
        if text:
            line(pdf, text)
    pdf.ln(4)
    line(pdf, f"Invoice {number}", size=14, style="B")
    line(pdf, f"Date: {issued_at:%Y-%m-%d}")
    line(pdf, f"Order: #{order['id']}")
    address = order.get("shipping_address") or {}
    pdf.ln(2)
    line(pdf, "Bill to:", style="B")
    for key in ("name", "line1", "line2"):
        if address.get(key):
            line(pdf, address[key])
    city = " ".join(str(address.get(k) or "") for k in ("postal_code", "city")).strip()
    for text in (city, address.get("country")):
        if text:
            line(pdf, text)
    pdf.ln(4)


def write_lines(pdf, order):
    """The items as a table: long SKUs and names wrap inside their cells, the header repeats on every page."""
    currency = order.get("currency", "")
    pdf.set_font("DejaVu", size=9)
    with pdf.table(col_widths=[width for _, width, _ in COLUMNS], text_align=[align for *_, align in COLUMNS],
                   wrapmode=WrapMode.WORD, headings_style=FontFace(emphasis="BOLD"), line_height=5,
                   borders_layout="HORIZONTAL_LINES", repeat_headings=1) as table:
        table.row([title for title, *_ in COLUMNS])
        for item in order.get("items", []):
            table.row([str(item.get("sku", "")), str(item.get("name", "")), str(item["quantity"]),
                       f"{money(item['unit_price'])} {currency}", f"{money(item['line_total'])} {currency}"])
    pdf.ln(3)


def write_totals(pdf, order, shop):
    currency = order.get("currency", "")
    rows = []
    taxes = tax_breakdown(order["total"], shop["tax_rate"])
    if taxes:
        percent = (taxes["rate"] * 100).normalize()
        rows += [("Net amount", taxes["net"]), (f"{shop['tax_label']} {percent:f}%", taxes["tax"])]
    rows.append(("Total", money(order["total"])))
    for label, amount in rows:
        pdf.set_font("DejaVu", style="B" if label == "Total" else "", size=10)
        pdf.cell(pdf.epw - 33, 6, label, align="R")
        pdf.cell(33, 6, f"{amount} {currency}", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


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
