"""Regenerate transcription.json from the upstream OpenAI OpenAPI document.

Usage:
    python extract.py OPENAPI_FILE --commit SHA [--source-path openapi.yaml] [-o transcription.json]

OPENAPI_FILE is the upstream document (openapi.yaml, or openapi.json), e.g. the
output of `git show <sha>:openapi.yaml` in a clone of openai/openai-openapi.
The root schemas below and the transitive closure of their
"#/components/schemas/..." references are copied unchanged.
Needs only the standard library and PyYAML.
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT_SCHEMAS = [
    # Responses of POST /audio/transcriptions (application/json).
    "CreateTranscriptionResponseJson",
    "CreateTranscriptionResponseVerboseJson",
    "CreateTranscriptionResponseDiarizedJson",
    "TranscriptionSegment",
    "TranscriptionWord",
    "TranscriptionDiarizedSegment",
    "TranscriptTextUsageTokens",
    "TranscriptTextUsageDuration",
    # Server-sent events (text/event-stream).
    "CreateTranscriptionResponseStreamEvent",
    "TranscriptTextDeltaEvent",
    "TranscriptTextDoneEvent",
    "TranscriptTextSegmentEvent",
    # Request body, for reference.
    "CreateTranscriptionRequest",
]

REPOSITORY = "openai/openai-openapi"
REF_PREFIX = "#/components/schemas/"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader that keeps unquoted dates as strings, as in JSON."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_document(path):
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        return json.loads(text)
    return yaml.load(text, Loader=_Loader)


def refs_in(node):
    """Yield every $ref string found anywhere inside node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def closure(schemas, roots):
    """Names of the roots and every schema they reach through $ref."""
    seen, pending = set(), list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        if name not in schemas:
            sys.exit(f"schema not found upstream: {name}")
        seen.add(name)
        for ref in refs_in(schemas[name]):
            if not ref.startswith(REF_PREFIX):
                sys.exit(f"unsupported $ref in {name}: {ref}")
            pending.append(ref[len(REF_PREFIX) :])
    return seen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", help="upstream openapi.yaml (or .json)")
    parser.add_argument("--commit", required=True, help="upstream commit sha")
    parser.add_argument(
        "--source-path",
        default="openapi.yaml",
        help="path of the document in the upstream repository",
    )
    parser.add_argument(
        "-o", "--output", default=str(Path(__file__).with_name("transcription.json"))
    )
    args = parser.parse_args(argv)

    schemas = load_document(args.document)["components"]["schemas"]
    wanted = closure(schemas, ROOT_SCHEMAS)
    result = {
        "source": {
            "repository": REPOSITORY,
            "commit": args.commit,
            "path": args.source_path,
        },
        # Upstream order, so regenerations diff cleanly.
        "components": {"schemas": {n: s for n, s in schemas.items() if n in wanted}},
    }
    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2, ensure_ascii=False)
        out.write("\n")
    print(f"wrote {len(wanted)} schemas to {args.output}")


if __name__ == "__main__":
    main()
