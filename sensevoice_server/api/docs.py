"""The interactive API docs (`/docs`, Swagger UI; `/redoc`), served whole by this process.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a machine without internet
access `/docs` is a blank page (docs/FACTS.md, "Gradio and HTTP"). The same files ship in the
fastapi-offline wheel (what FastAPI's "self-hosting JavaScript and CSS for docs" recipe
downloads by hand); we serve them from there, under /docs/, with FastAPI's own page builders.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = Path(fastapi_offline.__file__).parent / "static"
FILES = {  # the only files served, by name: nothing else under ASSETS is reachable
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def asset(request: Request, name: str) -> str:
    return f"{request.scope.get('root_path', '')}/docs/{name}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=request.scope.get("root_path", "") + app.openapi_url,
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=OAUTH2_REDIRECT,
        swagger_js_url=asset(request, "swagger-ui-bundle.js"),
        swagger_css_url=asset(request, "swagger-ui.css"),
        swagger_favicon_url=asset(request, "favicon.png"),
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    app = request.app
    return get_redoc_html(
        openapi_url=request.scope.get("root_path", "") + app.openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=asset(request, "redoc.standalone.js"),
        redoc_favicon_url=asset(request, "favicon.png"),
        with_google_fonts=False,  # the fonts come from Google's servers too
    )


# One route per file rather than a parameterised one or a static mount: the login guard and
# the 405 middleware match API paths exactly, and Gradio, mounted at "/", takes the rest.
def _serve(name: str) -> None:
    async def serve() -> FileResponse:
        return FileResponse(ASSETS / name, media_type=FILES[name])

    router.add_api_route(f"/docs/{name}", serve, methods=["GET"], name=f"docs-{name}")


for _name in FILES:
    _serve(_name)
