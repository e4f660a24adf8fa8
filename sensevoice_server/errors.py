"""Every way a request, a stream or start-up can fail, each with the answer it maps to.

Front ends never build error answers themselves: HTTP routes raise a `ServiceError` and
`api/errors.py` renders it (OpenAI's error shape, with `Retry-After` where retrying helps);
live streams end with a `StreamError`, whose close code says what kind of problem it was;
start-up stops with a `StartupError`, one line naming the setting at fault.
"""

from __future__ import annotations


# --- HTTP requests --------------------------------------------------------------------------
class ServiceError(Exception):
    """A failure to report to the caller; `status` is the HTTP status it maps to."""

    status: int = 500
    code: str = "internal_error"
    retry_after: int | None = None  # seconds; set on the answers worth retrying

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param  # the request field at fault, as OpenAI's errors name it


class BadRequest(ServiceError):
    status = 400
    code = "invalid_request"


class EmptyAudio(BadRequest):
    code = "empty_audio"


class Unauthorized(ServiceError):
    status = 401
    code = "invalid_api_key"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(ServiceError):
    status = 405
    code = "method_not_allowed"


class TooLarge(ServiceError):
    status = 413
    code = "file_too_large"


class TooLong(ServiceError):
    status = 413
    code = "audio_too_long"


class UnsupportedAudio(ServiceError):
    status = 415
    code = "unsupported_audio"


class ClientClosedRequest(ServiceError):
    """The client went away before its answer was ready (nginx's 499): the work stops."""

    status = 499
    code = "client_closed_request"


class Busy(ServiceError):
    """No room for more work now; the caller should retry after `retry_after` seconds."""

    status = 429
    code = "busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class TooManyFailures(Busy):
    """Too many failed logins or API keys lately: this address (or everyone) must wait."""

    code = "too_many_failures"


class NotReady(ServiceError):
    """The model is not loaded yet, or the process is shutting down."""

    status = 503
    code = "not_ready"
    retry_after = 5


class StoreUnavailable(ServiceError):
    status = 503
    code = "cache_unavailable"
    retry_after = 5


# --- live streams (WebSocket close codes, RFC 6455 section 7.4.1) -------------------------------
class StreamError(Exception):
    """A reason to end a live stream; `close_code` is the WebSocket close code it maps to."""

    close_code = 1011
    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class GoingAway(StreamError):
    close_code = 1001
    code = "shutting_down"


class UnsupportedData(StreamError):
    close_code = 1003
    code = "unsupported_data"


class PolicyViolation(StreamError):
    close_code = 1008
    code = "policy_violation"


class TryAgainLater(StreamError):
    close_code = 1013
    code = "try_again_later"


# --- start-up -------------------------------------------------------------------------------
class StartupError(Exception):
    """A setting or the environment stops the service from starting; the message says which
    setting and what to do, in one paragraph meant for the person who started it."""


class ModelLoadError(StartupError):
    """The model could not be loaded; the message says what to do."""
