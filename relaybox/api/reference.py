"""The API reference at `/docs`, and `/`, which leads to it and to the console.

`/docs` is Swagger UI from the files installed with the `fastapi-offline` package (no CDN:
it works offline), under a Content-Security-Policy of its own that allows only those files
and the OpenAPI document; the console's pages keep theirs (web/pages.py). The OpenAPI
document names the `Authorization` header as a security scheme on every route that
authenticates its caller, so Swagger UI's Authorize button sets it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request, Response, routing
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from relaybox.api import receiver
from relaybox.api.auth import authenticate
from relaybox.api.models import add_request_schemas, errors

DOCS = "/docs"
ASSETS = "/docs/assets"
SCHEME = "Authorization"
SCHEME_DESCRIPTION = (
    "The platform's credential: `User <secret>, Organization <secret>[, Element <token>]` "
    "(an Element token limits the call to that instance)."
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
LANDING_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

# Swagger UI's start, a file of its own so that the page's CSP needs no inline script.
START = """\
window.ui = SwaggerUIBundle({
  url: document.currentScript.dataset.openapi,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
});
"""

PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>relaybox API reference</title>
<link rel="stylesheet" href="{root}{assets}/swagger-ui.css">
<link rel="icon" href="{root}{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}{assets}/swagger-ui-bundle.js"></script>
<script src="{root}{docs}/start.js" data-openapi="{root}{openapi}"></script>
</body>
</html>
"""

LANDING = """\
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>relaybox</title></head>
<body>
<h1>relaybox</h1>
<ul>
<li><a href="{root}/ui/">Console</a>: sign in with your <code>User ..., Organization ...</code>
credential</li>
<li><a href="{root}{docs}">API reference</a> (OpenAPI: <a href="{root}{openapi}">{openapi}</a>)
</li>
</ul>
</body>
</html>
"""


def assets_dir() -> str:
    """Swagger UI's files as installed with fastapi-offline."""
    return str(files("fastapi_offline") / "static")


def install(app: FastAPI) -> None:
    """Serve `/docs` and its assets, `/`, and the security scheme in the OpenAPI document.

    The app must be made with `docs_url=None` and `redoc_url=None` (FastAPI's own pages load
    Swagger UI and ReDoc from a CDN)."""
    openapi = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        html = PAGE.format(root=root, assets=ASSETS, docs=DOCS, openapi=openapi)
        return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP})

    @app.get(f"{DOCS}/start.js", include_in_schema=False)
    async def start() -> Response:
        return Response(START, media_type="text/javascript")

    @app.get("/", include_in_schema=False)
    async def landing(request: Request) -> Response:
        """A browser gets a page with links; an API client the same links as JSON."""
        root = request.scope.get("root_path", "")
        if "text/html" in request.headers.get("accept", ""):
            html = LANDING.format(root=root, docs=DOCS, openapi=openapi)
            return HTMLResponse(html, headers={"Content-Security-Policy": LANDING_CSP})
        return JSONResponse(
            {
                "name": "relaybox",
                "console": f"{root}/ui/",
                "docs": f"{root}{DOCS}",
                "openapi": f"{root}{openapi}",
                "api": f"{root}/elements/api-v2",
            }
        )

    @app.get(f"{DOCS}/", include_in_schema=False)
    async def slash() -> RedirectResponse:
        return RedirectResponse(DOCS, 308)

    app.openapi = _completed(app)  # type: ignore[method-assign]


def _completed(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi`, with the Authorization scheme on each route that authenticates, the
    request bodies that routes read themselves, the receiver's POST (answered before
    routing), and no 422 (input errors answer 400, documented with the error body)."""

    generate = app.openapi  # FastAPI's: builds the document once and keeps it

    def openapi() -> dict[str, Any]:
        schema = generate()
        components = schema.setdefault("components", {})
        schemes = components.setdefault("securitySchemes", {})
        if SCHEME in schemes:
            return schema
        schemes[SCHEME] = {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": SCHEME_DESCRIPTION,
        }
        paths = schema.get("paths", {})
        for route in _routes(app):
            if not getattr(route, "include_in_schema", False) or not hasattr(route, "dependant"):
                continue
            if not any(d.call is authenticate for d in _dependants(route.dependant)):
                continue
            for method in route.methods:
                operation = paths.get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    operation["security"] = [{SCHEME: []}]
        add_request_schemas(components.setdefault("schemas", {}))
        for operations in paths.values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(unused, None)
        _document_receiver(paths)
        ready = paths.get("/readyz", {}).get("get")
        if ready is not None:
            ready["responses"]["503"] = {
                "description": "The database is unreachable, or migrations are pending.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        metrics = paths.get("/metrics", {}).get("get")
        if metrics is not None:
            metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
        return schema

    return openapi


def _document_receiver(paths: dict[str, Any]) -> None:
    """The provider webhook POST, which `Relaybox.__call__` answers before routing."""
    path = f"{receiver.router.prefix}/{{element_key}}"
    challenge = paths.get(path, {}).get("get")
    if challenge is None:
        return
    responses = {
        "200": {"description": "Verified and stored: the changes are fetched afterwards."},
        **{
            str(code): {
                "description": answer["description"],
                **({"headers": answer["headers"]} if "headers" in answer else {}),
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            }
            for code, answer in errors(400, 403, 404, 413, 429, 500).items()
        },
    }
    responses["429"]["description"] = (
        "Too many webhooks with a bad signature from this address; wait `Retry-After` seconds."
    )
    # One POST per element: each provider proves its notifications its own way.
    paths[f"{receiver.router.prefix}/dropbox"] = {
        "post": {
            "tags": challenge.get("tags", []),
            "summary": "Receive a Dropbox webhook",
            "description": 'Dropbox\'s change notification (`{"list_folder": {"accounts": '
            "[...]}}`), verified against the app secrets of the element's instances "
            "(`X-Dropbox-Signature`) before anything is stored.",
            "operationId": "receive_dropbox_webhook",
            "parameters": [
                {
                    "name": "X-Dropbox-Signature",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "HMAC-SHA256 of the body with the app secret, in hex.",
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": responses,
        }
    }
    channel_responses = {
        **responses,
        "200": {
            "description": "A `change` verified and stored (the changes are fetched "
            "afterwards), or a `sync` acknowledged."
        },
        "403": {
            **responses["403"],
            "description": "No such channel, or `X-Goog-Channel-Token` is not its token.",
        },
        "429": {
            **responses["429"],
            "description": "Too many notifications with a bad channel token from this "
            "address; wait `Retry-After` seconds.",
        },
    }
    channel_headers = [
        ("X-Goog-Channel-ID", True, 64, "The channel relaybox made (`changes.watch`)."),
        ("X-Goog-Channel-Token", True, 512, "The channel's secret token, made by relaybox."),
        ("X-Goog-Resource-State", True, 32, "`sync` (the channel is made) or `change`."),
        ("X-Goog-Message-Number", False, 32, "Increases with each message of the channel."),
    ]
    paths[f"{receiver.router.prefix}/googledrive"] = {
        "post": {
            "tags": challenge.get("tags", []),
            "summary": "Receive a Google Drive push notification",
            "description": "A `changes.watch` channel's notification (headers, an empty "
            "body), verified against the channel's own token before anything is stored.",
            "operationId": "receive_googledrive_notification",
            "parameters": [
                {
                    "name": name,
                    "in": "header",
                    "required": required,
                    "schema": {"type": "string", "minLength": 1, "maxLength": longest},
                    "description": description,
                }
                for name, required, longest, description in channel_headers
            ],
            "responses": channel_responses,
        }
    }


def _routes(app: FastAPI) -> Iterable[Any]:
    """Every route, those of included routers too (FastAPI 0.16x keeps an included router
    as one entry of `app.routes`, and `iter_route_contexts` opens it)."""
    opened = getattr(routing, "iter_route_contexts", None)
    return opened(app.routes) if opened is not None else app.routes


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)
