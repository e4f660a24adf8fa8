"""The web UI's login: nothing under the Gradio mount answers without a key or a login.

Gradio's own `auth` covers its page and some of its routes, but not a client that brings an
API key (gradio_client's `headers=`), and not every route it serves; so this guard stands in
front of the whole mount instead. A request passes with `Authorization: Bearer <key>` or the
cookie that `POST /login` sets; otherwise a browser is sent to the login page and any other
client gets a 401 in the API's error shape. Our own API routes check keys themselves and the
health, readiness and metrics routes stay open, so they are let through untouched.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sensevoice_server.api.auth import Credentials, bearer_token

COOKIE = "sensevoice_login"
router = APIRouter(include_in_schema=False)


class UiLoginRequired:
    """ASGI middleware: the Gradio mount needs a Bearer key or a login cookie."""

    def __init__(
        self,
        app: ASGIApp,
        credentials: Credentials,
        own_paths: Iterable[str],
        own_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.own_paths = frozenset(own_paths)  # our routes: they do their own checks
        self.own_prefixes = own_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or not self.credentials.ui_login_required
            or scope["path"] in self.own_paths
            or scope["path"].startswith(self.own_prefixes)
            or self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "login required"})
            return
        await self._refusal(scope)(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        if token is not None and self.credentials.valid_key(token):
            return True
        cookies = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
        return COOKIE in cookies and self.credentials.valid_cookie(cookies[COOKIE].value)

    def _refusal(self, scope: Scope) -> Response:
        headers = dict(scope.get("headers") or [])
        wants_page = scope["method"] == "GET" and b"text/html" in headers.get(b"accept", b"")
        if wants_page:
            target = scope["path"] + (
                "?" + scope["query_string"].decode() if scope["query_string"] else ""
            )
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        body = {"error": {"message": "Log in at /login, or send 'Authorization: Bearer <key>' "
                          "(gradio_client: Client(url, headers={'Authorization': 'Bearer "
                          "<key>'})).", "type": "authentication_error", "param": None,
                          "code": "login_required"}}  # fmt: skip
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SenseVoice: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1.2rem}}.error{{color:#b00020}}</style></head>
<body><h1>SenseVoice</h1><p>This server needs a login. Use an API key as the password
(any user name), or the user and password the operator gave you.</p>{error}
<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<label for="user">User</label><input id="user" name="user" autocomplete="username">
<label for="password">Password or API key</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="login">Log in</button></form></body></html>
"""


def safe_next(target: str) -> str:
    """Only a path on this server: an open redirect would hand our login to someone else."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login")
async def login_page(next: str = "/") -> HTMLResponse:
    return HTMLResponse(PAGE.format(error="", next=html.escape(safe_next(next))))


@router.post("/login")
async def login(
    request: Request, password: str = Form(""), user: str = Form(""), next: str = Form("/")
) -> Response:
    credentials: Credentials = request.app.state.credentials
    if not credentials.valid_login(user, password):
        page = PAGE.format(error='<p class="error" id="login-error">Wrong user or password.</p>',
                           next=html.escape(safe_next(next)))  # fmt: skip
        return HTMLResponse(page, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, credentials.cookie_for(user, password), httponly=True, samesite="lax",
        secure=request.url.scheme == "https", max_age=30 * 24 * 3600,
    )  # fmt: skip
    return response


@router.get("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
