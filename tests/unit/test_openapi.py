"""schemathesis against the in-process app's /openapi.json: no 5xx, no answer outside the
schema, and the schema says what the code refuses. Fixed seed and example count, so a run
is repeatable; schemathesis's pytest plugin does not support pytest 9 yet, so its Python API
drives the cases through Starlette's TestClient (httpx over ASGI, one event loop)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi.schemas  # imported at collection (see below)
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from sensevoice_server.app import create_app
from sensevoice_server.settings import Settings
from tests.support.inprocess import changed

# schemathesis imports its OpenAPI machinery lazily; imported deep in a test's stack, pytest's
# assertion rewriting of it trips CPython 3.11's "AST constructor recursion depth mismatch"
# (python/cpython#106905), so it is imported above, at collection.
EXAMPLES = 12
# Schema-valid is not always acceptable: random bytes are valid "binary" but not audio (415).
# Every other check runs: no 5xx, status codes and content types documented, bodies match.
EXCLUDED = [positive_data_acceptance]


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(changed(settings, max_upload_mb=2.0, max_duration_s=20.0))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while not app.state.transcriber.ready:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield client


def operations(client: TestClient) -> list[Any]:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    return [result.ok() for result in schema.get_all_operations()]


def form_parts(files: list[Any] | None) -> list[Any] | None:
    """requests turns any value into text; httpx takes only text or bytes."""
    if files is None:
        return None
    parts = []
    for name, (filename, content, *rest) in files:
        if not isinstance(content, (bytes, str)):
            content = str(content)
        parts.append((name, (filename, content, *rest)))
    return parts


def send(client: TestClient, kwargs: dict[str, Any]) -> Any:
    """schemathesis serialises for `requests`; the same request through httpx."""
    data = kwargs.get("data")
    request = client.build_request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"),
        headers=dict(kwargs.get("headers") or {}), cookies=kwargs.get("cookies"),
        files=form_parts(kwargs.get("files")), json=kwargs.get("json"),
        content=data if isinstance(data, (bytes, str)) else None,
        data=data if isinstance(data, dict) else None,
    )  # fmt: skip
    request.read()  # the checks read the request body back
    return client.send(request)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_within_its_schema(
    client: TestClient, mode: GenerationMode
) -> None:
    for operation in operations(client):

        @seed(2026)
        @hypothesis_settings(
            max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            response = send(client, kwargs)
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            case.validate_response(response, excluded_checks=EXCLUDED)

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs to break


def test_the_schema_says_uploads_and_model_names_may_not_be_empty(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    openai_form = next(s for name, s in schema.items() if "create_transcription" in name)
    assert openai_form["properties"]["model"]["minLength"] == 1
    native_form = next(s for name, s in schema.items() if name.startswith("Body_transcribe"))
    assert native_form["properties"]["file"].get("minLength") == 1
