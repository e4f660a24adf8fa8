"""The one place errors become HTTP answers: OpenAI's error shape, for every route.

Routes and middleware raise (or hand over) a `ServiceError`; this module renders it as
`{"error": {"message", "type", "param", "code"}}` with its status, and `Retry-After` on every
429 and 503. FastAPI's own validation errors and Starlette's 404/405 are rendered the same
way, so a client meets one shape whatever went wrong.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from sensevoice_server.errors import BadRequest, MethodNotAllowed, NotFound, ServiceError

MAX_ECHO = 80  # characters of a client's value quoted back in a message


class ErrorBody(BaseModel):
    message: str = Field(examples=["The file could not be decoded as audio."])
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = None
    code: str = Field(examples=["unsupported_audio"])


class ErrorOut(BaseModel):
    """OpenAI's error shape, used by every route."""

    error: ErrorBody


class HttpError(ServiceError):
    """Any other status Starlette or Gradio raises, in our shape."""

    code = "http_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_type(status: int) -> str:
    """OpenAI's `type` for a status."""
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(error: ServiceError) -> ErrorBody:
    return ErrorBody(
        message=error.message, type=error_type(error.status), param=error.param, code=error.code
    )


def error_response(error: ServiceError, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if error.status in (429, 503):
        headers["Retry-After"] = str(error.retry_after or 1)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = ErrorOut(error=error_body(error)).model_dump()
    return JSONResponse(body, status_code=error.status, headers=headers)


def quoted(value: object) -> str:
    """A client's value for a message: quoted, and cut short (a 100 kB name is not echoed)."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 4] + "...'"


async def on_service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    return error_response(error)


async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI says 422 with a list of dicts; a person wants 400 and a sentence."""
    assert isinstance(error, RequestValidationError)
    problems = []
    param = None
    for item in error.errors():
        field, label = field_name(tuple(item.get("loc") or ()))
        param = param or field
        problems.append(f"{label}: {item['msg']}")
    return error_response(BadRequest("Bad request. " + "; ".join(problems)[:500], param=param))


def field_name(loc: tuple[object, ...]) -> tuple[str, str]:
    """The field a validation error is about, as the client named it, and how to say where:
    "languages[]" and "languages[] item 2" for an element of a list (pydantic's location
    ends in its index)."""
    if not loc:
        return "request", "request"
    if isinstance(loc[-1], int) and len(loc) > 1:
        return str(loc[-2]), f"{loc[-2]} item {loc[-1] + 1}"
    return str(loc[-1]), str(loc[-1])


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return error_response(NotFound(f"Nothing is served at {request.url.path[:200]}."))
    headers = dict(error.headers) if error.headers else None
    if error.status_code == 405:
        return error_response(MethodNotAllowed(str(error.detail)), headers=headers)
    return error_response(HttpError(error.status_code, str(error.detail)), headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
