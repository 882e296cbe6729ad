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
from fpdf.enums import XPos, YPos
from nameko.extensions import DependencyProvider

from common.errors import Forbidden, NotFound
from services.notifications.channels import setting

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


def latin1(text):
    # The core PDF fonts cover Latin-1 only; anything else prints as '?' rather than failing the invoice.
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


def shop_details():
    return {
        "name": setting("SHOP_NAME", "Product Order Service Shop"),
        "address": setting("SHOP_ADDRESS", ""),
        "email": setting("SHOP_EMAIL", setting("MAIL_FROM", "")),
        "tax_id": setting("SHOP_TAX_ID", ""),
        "tax_rate": setting("INVOICE_TAX_RATE", 0),
        "tax_label": setting("INVOICE_TAX_LABEL", "VAT"),
    }


def render_invoice_pdf(order, number, issued_at, shop):
    pdf = FPDF(format="A4")
    pdf.set_title(f"Invoice {number}")
    pdf.add_page()
    write_header(pdf, order, number, issued_at, shop)
    write_lines(pdf, order)
    write_totals(pdf, order, shop)
    return bytes(pdf.output())


def line(pdf, text, size=10, style="", align="L", width=0):
    pdf.set_font("Helvetica", style=style, size=size)
    pdf.cell(width, 6, latin1(text), align=align, new_x=XPos.LMARGIN if not width else XPos.RIGHT,
             new_y=YPos.NEXT if not width else YPos.TOP)


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


COLUMNS = (("SKU", 30, "L"), ("Item", 75, "L"), ("Qty", 15, "R"), ("Unit price", 30, "R"), ("Amount", 30, "R"))


def write_lines(pdf, order):
    for title, width, align in COLUMNS:
        line(pdf, title, style="B", align=align, width=width)
    pdf.ln(7)
    currency = order.get("currency", "")
    for item in order.get("items", []):
        values = (item.get("sku", ""), item.get("name", ""), item["quantity"],
                  f"{money(item['unit_price'])} {currency}", f"{money(item['line_total'])} {currency}")
        for (_, width, align), value in zip(COLUMNS, values, strict=True):
            line(pdf, str(value)[:40], align=align, width=width)
        pdf.ln(6)
    pdf.ln(2)


def write_totals(pdf, order, shop):
    currency = order.get("currency", "")
    rows = []
    taxes = tax_breakdown(order["total"], shop["tax_rate"])
    if taxes:
        percent = (taxes["rate"] * 100).normalize()
        rows += [("Net amount", taxes["net"]), (f"{shop['tax_label']} {percent:f}%", taxes["tax"])]
    rows.append(("Total", money(order["total"])))
    for label, amount in rows:
        line(pdf, label, style="B" if label == "Total" else "", align="R", width=150)
        line(pdf, f"{amount} {currency}", style="B" if label == "Total" else "", align="R", width=30)
        pdf.ln(6)


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
        self.client.put_object(Bucket=self.bucket, Key=key, Body=content, ContentType="application/pdf")

    def get(self, key):
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def url(self, key, ttl):
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=int(ttl))
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(ttl))
        return url, expires_at

    def open_token(self, token):
        raise NotFound("Invoices are served from S3, not through the gateway.", code="invoice_not_found")


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
