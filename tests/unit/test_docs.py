"""The docs stay true: generated tables match the code, every link resolves, and the README's
test command is what CI runs. (tests/e2e/test_readme.py runs the README's commands.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import readme_tables
from sensevoice_server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ["README.md", "deploy/README.md", "samples/README.md",
        "tests/support/openai_schema/README.md"]  # fmt: skip
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_settings_table_is_generated_from_the_settings() -> None:
    for name in Settings.model_fields:
        assert f"`SENSEVOICE_{name.upper()}`" in README, name
        assert f"`--{name.replace('_', '-')}`" in README, name
    assert readme_tables.settings_table() in README, "run: python scripts/readme_tables.py --write"


def test_the_readme_protocol_section_is_generated_from_the_protocol_module() -> None:
    assert readme_tables.protocol_table() in README, "run: python scripts/readme_tables.py --write"


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.*)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS)
def test_every_link_resolves(doc: str) -> None:
    path = ROOT / doc
    text = path.read_text()
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, fragment = target.partition("#")
        destination = (path.parent / file) if file else path
        assert destination.exists(), f"{doc}: {target} does not exist"
        if fragment and destination.suffix == ".md":
            assert fragment in anchors(destination.read_text()), f"{doc}: #{fragment}"


def test_ci_runs_the_readme_test_command() -> None:
    assert "bash scripts/run-tests.sh" in README
    assert "bash scripts/run-tests.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/run-app.sh" in README and (ROOT / "scripts" / "run-app.sh").exists()


def test_no_placeholder_is_left_in_the_readme() -> None:
    assert not re.search(r"^[A-Z_]{6,}$", README, re.MULTILINE)
