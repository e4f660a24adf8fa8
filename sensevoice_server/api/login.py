"""The web UI's login: nothing under the Gradio mount answers without a key or a login.

Gradio's own `auth` covers its page and some of its routes, but not a client that brings an
API key (gradio_client's `headers=`), and not every route it serves; so this guard stands in
front of the whole mount instead. A request passes with `Authorization: Bearer <key>` or the
cookie that `POST /login` sets; otherwise a browser is sent to the login page and any other
client gets a 401 in the API's error shape. Our own API routes check keys themselves and the
health, readiness and metrics routes stay open, so they are let through untouched.

The cookie holds a login's random id (sessions.py), so `POST /logout` ends it for good.
Failed logins count against the client's address like wrong API keys (throttle.py): after a
few, it gets 429 with Retry-After, the password unchecked, until its wait is over.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sensevoice_server.api.auth import bearer_token, client_address
from sensevoice_server.api.credentials import Credentials
from sensevoice_server.api.deps import CredentialsDep
from sensevoice_server.api.errors import error_response
from sensevoice_server.errors import TooManyFailures

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
        ):
            await self.app(scope, receive, send)
            return
        waiting: TooManyFailures | None = None
        try:
            authorized = self._authorized(scope)
        except TooManyFailures as error:
            authorized, waiting = False, error
        if authorized:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "login required"})
        else:
            refusal = error_response(waiting) if waiting else self._refusal(scope)
            await refusal(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        """A Bearer key, when one is sent (a wrong one counts as a failure), else the cookie
        of a live login."""
        headers = dict(scope.get("headers") or [])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        if token is not None:
            return self.credentials.check_key(token, client_address(scope), scope["path"])
        return self.credentials.sessions.valid(login_cookie(headers))

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


LOGOUT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SenseVoice: log out</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}
button{margin-top:1rem;padding:.5rem 1.2rem}</style></head>
<body><h1>SenseVoice</h1><p>Log out of this server?</p>
<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form>
</body></html>
"""


def login_cookie(headers: dict[bytes, bytes]) -> str:
    cookies = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
    return cookies[COOKIE].value if COOKIE in cookies else ""


def safe_next(target: str) -> str:
    """Only a path on this server: an open redirect would hand our login to someone else."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def login_form(next: str, error: str = "", status: int = 200, wait_s: int = 0) -> HTMLResponse:
    """The login page, with `error` (plain text) above the form."""
    shown = f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else ""
    headers = {"Retry-After": str(wait_s)} if wait_s else None
    page = PAGE.format(error=shown, next=html.escape(safe_next(next)))
    return HTMLResponse(page, status_code=status, headers=headers)


@router.get("/login")
async def login_page(next: str = "/") -> HTMLResponse:
    return login_form(next)


@router.post("/login")
async def login(
    request: Request,
    credentials: CredentialsDep,
    password: str = Form(""),
    user: str = Form(""),
    next: str = Form("/"),
) -> Response:
    address = client_address(request.scope)
    try:
        credentials.refuse_if_waiting(address)
    except TooManyFailures as waiting:
        return login_form(next, waiting.message, status=429, wait_s=waiting.retry_after or 1)
    if not credentials.valid_login(user, password):
        wait = credentials.failed(address, "failed login")
        later = f" Wait {wait} s before the next try." if wait else ""
        return login_form(next, "Wrong user or password." + later, status=401, wait_s=wait)
    credentials.throttle.succeeded(address)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, credentials.sessions.open(), httponly=True, samesite="lax",
        secure=request.url.scheme == "https", max_age=int(credentials.sessions.lifetime_s),
    )  # fmt: skip
    return response


@router.get("/logout")
async def logout_page() -> HTMLResponse:
    """A page whose button logs out: a GET changes nothing (a link or a prefetch must not
    log anyone out), so a "Log out" link can point here."""
    return HTMLResponse(LOGOUT_PAGE)


@router.post("/logout")
async def logout(request: Request, credentials: CredentialsDep) -> Response:
    """End this login: its cookie grants nothing any more, wherever a copy of it is."""
    credentials.sessions.end(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
