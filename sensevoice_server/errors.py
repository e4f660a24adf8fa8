"""What can go wrong for a caller, each kind with its HTTP status, mapped in one place.

Front ends never build error answers themselves: they raise one of these and the API's
exception handler (or the UI's) turns it into a message a person understands.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A failure to report to the caller; `status` is the HTTP status it maps to."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param  # the request field at fault, as OpenAI's errors name it


class BadRequest(ServiceError):
    status = 400
    code = "invalid_request"


class ModelNotFound(ServiceError):
    status = 404
    code = "model_not_found"


class EmptyAudio(BadRequest):
    code = "empty_audio"


class TooLarge(ServiceError):
    status = 413
    code = "file_too_large"


class TooLong(ServiceError):
    status = 413
    code = "audio_too_long"


class UnsupportedAudio(ServiceError):
    status = 415
    code = "unsupported_audio"


class Busy(ServiceError):
    """The engine queue is full; the caller should retry after `retry_after` seconds."""

    status = 429
    code = "busy"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotReady(ServiceError):
    status = 503
    code = "not_ready"


class ModelLoadError(RuntimeError):
    """The model could not be loaded at start-up; the message says what to do."""
