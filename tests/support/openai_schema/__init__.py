"""OpenAI's transcription schemas, vendored (README.md says from where), and a validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

DOCUMENT = json.loads((Path(__file__).parent / "transcription.json").read_text())
URI = "urn:openai-transcription"
REGISTRY = Registry().with_resource(URI, Resource.from_contents(
    {"$schema": "https://json-schema.org/draft/2020-12/schema", **DOCUMENT}
))  # fmt: skip


def errors(instance: Any, schema_name: str) -> list[str]:
    """Why `instance` does not validate against the named component schema ([] if it does)."""
    schema = {"$ref": f"{URI}#/components/schemas/{schema_name}"}
    validator = Draft202012Validator(schema, registry=REGISTRY)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]
