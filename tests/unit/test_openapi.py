"""schemathesis against the in-process app's /openapi.json: no 5xx, no answer outside the
schema, and the schema says exactly what the code takes: every request it allows is accepted
(2xx), every request it refuses is refused (4xx). Fixed seed and example counts, so a run is
repeatable; schemathesis's pytest plugin does not support pytest 9 yet, so its Python API
drives the cases through Starlette's TestClient (httpx over ASGI, one event loop).

What a schema cannot say is whether a file's bytes are audio ("binary" allows any bytes), so
every generated file part that is not empty is sent as a real clip instead: the form's other
fields, which the schema does describe, then decide the answer alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi.schemas  # imported at collection (see below)
from hypothesis import HealthCheck, assume, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from starlette.testclient import TestClient

from sensevoice_server.api.deps import services_of
from sensevoice_server.app import create_app
from sensevoice_server.settings import Settings
from sensevoice_server.testing.audio_files import wav_bytes
from tests.support.inprocess import changed
from tests.support.samples import load

# schemathesis imports its OpenAPI machinery lazily; imported deep in a test's stack, pytest's
# assertion rewriting of it trips CPython 3.11's "AST constructor recursion depth mismatch"
# (python/cpython#106905), so it is imported above, at collection.
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 20}
"""Per operation. 40 schema-valid forms per route find each mismatch the landed code had
(null in an optional field, num_speakers with speaker labels off, an empty batch, a model
name not served) within the first few; the whole module takes about 20 s on two cores."""
CLIP = wav_bytes(load("en.wav")[:8000])  # half a second of speech: fast, and really audio
FILE_FIELDS = ("file", "files")
TRANSCRIPTION_PATHS = ("/api/transcribe", "/api/batch", "/v1/audio/transcriptions")


def started(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while not services_of(app).transcriber.ready:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield client


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """Speaker labels off (the default), small limits, batches of at most 3 files."""
    yield from started(changed(settings, max_upload_mb=2.0, max_duration_s=20.0,
                               max_batch_files=3))  # fmt: skip


@pytest.fixture(scope="module")
def speakers_client(settings: Settings, campplus_model: Path) -> Iterator[TestClient]:
    """Speaker labels on: num_speakers and diarized_json are part of the forms."""
    yield from started(changed(settings, speakers=True, speaker_model=str(campplus_model),
                               max_duration_s=20.0, max_batch_files=2))  # fmt: skip


def operations(client: TestClient, paths: tuple[str, ...] | None = None) -> list[Any]:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    found = [result.ok() for result in schema.get_all_operations()]
    return [operation for operation in found if paths is None or operation.path in paths]


def form_parts(files: list[Any] | None) -> list[Any] | None:
    """The generated parts, each file part that is not empty a real clip; and as httpx
    takes them (requests turns any value into text; httpx takes only text or bytes)."""
    if files is None:
        return None
    parts = []
    for name, (filename, content, *rest) in files:
        if name in FILE_FIELDS and isinstance(content, (bytes, str)) and content:
            content = CLIP
        elif not isinstance(content, (bytes, str)):
            content = str(content)
        parts.append((name, (filename, content, *rest)))
    return parts


def file_of_another_type(case: Any) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    return any(
        name in body and not isinstance(body[name], (bytes, str, list)) for name in FILE_FIELDS
    )


def empty_form_value(case: Any) -> bool:
    """FastAPI, like HTML forms, reads an empty form value as the field left out (its default
    applies); the schema cannot say so, so an empty value is no negative case."""
    body = case.body if isinstance(case.body, dict) else {}
    return any(value in ("", b"") for name, value in body.items() if name not in FILE_FIELDS)


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


def check_operations(client: TestClient, mode: GenerationMode, operations: list[Any]) -> None:
    """Every check schemathesis has, on each operation: in POSITIVE mode that includes
    positive_data_acceptance (a schema-valid request answered 2xx), in NEGATIVE mode
    negative_data_rejection (a schema-invalid one answered 4xx)."""
    for operation in operations:

        @seed(2026)
        @hypothesis_settings(
            max_examples=EXAMPLES[mode], derandomize=True, database=None, deadline=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            # a file part is bytes on the wire whatever its schema type: a "number in place
            # of the file" is sent as a real clip by form_parts, so it is no negative case
            assume(mode is GenerationMode.POSITIVE or not file_of_another_type(case))
            assume(mode is GenerationMode.POSITIVE or not empty_form_value(case))
            response = send(client, case.as_transport_kwargs(base_url="http://testserver"))
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            case.validate_response(response)

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs to break


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_accepts_what_its_schema_allows_and_nothing_else(
    client: TestClient, mode: GenerationMode
) -> None:
    check_operations(client, mode, operations(client))


def test_with_speaker_labels_on_the_forms_take_num_speakers_and_diarized_json(
    speakers_client: TestClient,
) -> None:
    check_operations(
        speakers_client, GenerationMode.POSITIVE, operations(speakers_client, TRANSCRIPTION_PATHS)
    )


def forms(client: TestClient) -> dict[str, dict[str, Any]]:
    document = client.get("/openapi.json").json()
    return {
        path: document["components"]["schemas"][
            document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"][
                "schema"
            ]["$ref"].rsplit("/", 1)[-1]
        ]["properties"]
        for path in TRANSCRIPTION_PATHS
    }


def test_no_form_field_is_nullable(client: TestClient) -> None:
    """Multipart has no null: `num_speakers=null` arrives as the text "null", which is no
    integer. An optional field is one a client leaves out, and the schema says just that."""
    for path, fields in forms(client).items():
        for name, field in fields.items():
            assert "null" not in str(field), (path, name, field)


def test_the_forms_follow_the_servers_settings(
    client: TestClient, speakers_client: TestClient
) -> None:
    off, on = forms(client), forms(speakers_client)
    assert off["/v1/audio/transcriptions"]["model"]["enum"] == ["sensevoice-small", "whisper-1"]
    assert "diarized_json" not in off["/v1/audio/transcriptions"]["response_format"]["enum"]
    assert "diarized_json" in on["/v1/audio/transcriptions"]["response_format"]["enum"]
    assert "num_speakers" not in off["/api/transcribe"] and "num_speakers" not in off["/api/batch"]
    assert on["/api/transcribe"]["num_speakers"] == on["/api/batch"]["num_speakers"]
    assert on["/api/batch"]["num_speakers"]["minimum"] == 1
    batch_off, batch_on = off["/api/batch"]["files"], on["/api/batch"]["files"]
    assert (batch_off["minItems"], batch_off["maxItems"], batch_on["maxItems"]) == (1, 3, 2)


def test_the_schema_says_uploads_and_model_names_may_not_be_empty(client: TestClient) -> None:
    fields = forms(client)
    assert fields["/v1/audio/transcriptions"]["model"]["minLength"] == 1
    assert fields["/api/transcribe"]["file"].get("minLength") == 1


@pytest.mark.parametrize(
    ("path", "form"),
    [("/api/transcribe", {"num_speakers": "null"}), ("/api/batch", {"num_speakers": "2"}),
     ("/v1/audio/transcriptions", {"model": "whisper-1", "temperature": "null"}),
     ("/v1/audio/transcriptions", {"model": "whisper-1", "language": "EN"})],
)  # fmt: skip
def test_what_the_schema_refuses_gets_a_400_naming_the_field(
    client: TestClient, path: str, form: dict[str, str]
) -> None:
    name = "files" if path == "/api/batch" else "file"
    answer = client.post(path, files={name: ("clip.wav", CLIP)}, data=form)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] in form
