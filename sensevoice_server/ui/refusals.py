"""A user's mistake in the UI, answered as the HTTP API answers it.

The API turns a `ServiceError` into one answer with its message and the access log into one
line. A `gr.Error` raised plainly does reach the page, but Gradio's queue also prints its
whole traceback (20 to 60 lines) into the server log, as if the server had failed. Here the
page gets the same message the API gives (errors.py's wording), the log one line naming
the event and the error's code, and no traceback; an unexpected exception still gets one.
"""

from __future__ import annotations

import logging

import gradio as gr

from sensevoice_server.errors import ServiceError, StreamError

log = logging.getLogger("sensevoice_server.ui")


def refused(error: ServiceError | StreamError, event: str) -> gr.Error:
    """The gr.Error to raise for `error` in the UI event `event`, logged as one line."""
    if isinstance(error, ServiceError):
        status, server_side = error.status, error.status >= 500
    else:  # a live stream's close code, of which 1011 alone is the server's own failure
        status, server_side = error.close_code, error.close_code == 1011
    log.log(logging.WARNING if server_side else logging.INFO,
            "%s refused (%s %s): %s", event, status, error.code, error.message)  # fmt: skip
    return gr.Error(error.message, print_exception=False)
