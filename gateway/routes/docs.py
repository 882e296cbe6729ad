"""The API's own description: the OpenAPI document and Swagger UI, served from the swagger-ui-bundle package.

``/docs`` needs no internet: its page, script and styles all come from this gateway, and its
Content-Security-Policy allows nothing else (no inline script: the initialiser is a file of its own).
"""

import functools
import mimetypes

from swagger_ui_bundle import swagger_ui_path
from werkzeug.wrappers import Response

from common.errors import NotFound
from gateway.http import api
from gateway.openapi import build_document

DOCS = ["Documentation"]
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
          "favicon-32x32.png", "favicon-16x16.png")
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'")
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>Product Order Service API</title>
  <link rel="stylesheet" type="text/css" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="/docs/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
  <script src="/docs/swagger-initializer.js" charset="UTF-8"></script>
</body>
</html>
"""
INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
};
"""


class DocsRoutes:
    @api("GET", "/openapi.json", rate_limit=False, summary="This API's OpenAPI 3 document", tags=DOCS,
         responses={200: "application/json"})
    def openapi(self, request):
        return openapi_document(type(self))

    @api("GET", "/docs", rate_limit=False, summary="Swagger UI for this API (served locally)", tags=DOCS,
         responses={200: "text/html"})
    def docs(self, request):
        return Response(PAGE, content_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": DOCS_CSP})

    @api("GET", "/docs/<string:asset>", rate_limit=False, openapi=False, tags=DOCS)
    def docs_asset(self, request, asset):
        if asset == "swagger-initializer.js":
            return static(INITIALIZER.encode(), "application/javascript")
        if asset not in ASSETS:
            raise NotFound("No such documentation file.", code="not_found")
        return static((swagger_ui_path / asset).read_bytes(), mimetypes.guess_type(asset)[0])


@functools.cache
def openapi_document(service_cls):
    return build_document(service_cls)


def static(content, content_type):
    return Response(content, content_type=content_type,
                    headers={"Cache-Control": "public, max-age=86400", "Content-Security-Policy": DOCS_CSP})
