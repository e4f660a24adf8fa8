"""The docs stay true: generated tables match the code, every link resolves, every document,
invariant and test that a file cites exists, and the README's test command is what CI runs.
(tests/e2e/test_readme.py runs the README's commands.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import readme_tables
from sensevoice_server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ["README.md", "deploy/README.md", "samples/README.md", "docs/ARCHITECTURE.md",
        "docs/FACTS.md", "tests/support/openai_schema/README.md"]  # fmt: skip
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


# --- citations: what a comment or a doc cites must be in the repository --------------------
SCANNED = ["README.md", "pyproject.toml", "requirements.txt", "requirements-test.txt",
           "app_sensevoice.py", ".ci", "sensevoice_server", "tests", "bench", "scripts",
           "deploy", "docs", "samples"]  # fmt: skip
SKIPPED_DIRS = {"__pycache__", ".venv", "out", "trained", "openai_schema"}
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".sh", ".conf", ".cfg", ".ini", ".yaml",
                 ".yml", ".json", ""}  # fmt: skip
ARCHITECTURE = ROOT / "docs/ARCHITECTURE.md"
# a document path: anything ending in .md, with the folders before it (`docs/FACTS.md`)
DOCUMENT = re.compile(r"(?<![\w/.-])((?:\.\./|[\w-]+/)*[\w-]+\.md)\b")
# a section of one of our documents, cited by its heading: docs/FACTS.md, "Threads"
SECTION = re.compile(r"\b((?:docs/)?(?:ARCHITECTURE|FACTS)\.md)[,:]?\s+\(?\"([^\"]+)\"")
# "invariant 3", "invariants 1 and 2", "invariants 1, 2 and 8"
INVARIANT = re.compile(r"\b[Ii]nvariants?\s+(\d+(?:(?:\s*,\s*|\s+and\s+|\s*&\s*)\d+)*)")
# a test: tests/unit/test_docs.py, optionally ::test_name
TEST = re.compile(r"\b(tests/[\w/]+\.py)(?:::(\w+))?")


def scanned_files() -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        top = ROOT / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in candidates:
            parts = set(path.relative_to(ROOT).parts[:-1])
            if path.is_file() and not parts & SKIPPED_DIRS and path.suffix in TEXT_SUFFIXES:
                found.append(path)
    return found


def cited_lines() -> list[tuple[str, int, str]]:
    """(file, line number, line) for every line of every scanned text file."""
    lines = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        name = str(path.relative_to(ROOT))
        lines.extend((name, number, line) for number, line in enumerate(text.splitlines(), 1))
    return lines


def defined_invariants() -> set[int]:
    text = ARCHITECTURE.read_text()
    section = text.split("\n## Invariants", 1)[1].split("\n## ", 1)[0]
    return {int(number) for number in re.findall(r"^(\d+)\. \*\*", section, re.MULTILINE)}


def test_the_architecture_defines_its_invariants_in_order() -> None:
    numbers = defined_invariants()
    assert numbers and numbers == set(range(1, max(numbers) + 1))


def test_every_cited_document_exists() -> None:
    """Comments once cited design notes that were never in the repository. A path is looked
    up beside the citing file, then from the repository's root."""
    missing = []
    for name, number, line in cited_lines():
        for cited in DOCUMENT.findall(line):
            here = (ROOT / name).parent / cited
            if not (here.exists() or (ROOT / cited).exists()):
                missing.append(f"{name}:{number}: {cited}")
    assert not missing, "cited documents that do not exist:\n" + "\n".join(missing)


def test_every_cited_section_exists() -> None:
    """A section is cited by its heading, in quotes; the citation may wrap onto the next
    line of a comment, so each file is read with its line breaks (and comment marks) joined."""
    missing = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        joined = re.sub(r"\s*\n\s*(?:#+|;+)?\s*", " ", text)
        for document, heading in SECTION.findall(joined):
            headings = re.findall(r"^#+\s+(.*)$", (ROOT / "docs" / Path(document).name)
                                  .read_text(), re.MULTILINE)  # fmt: skip
            if heading not in headings:
                missing.append(f"{path.relative_to(ROOT)}: {document}, {heading!r}")
    assert not missing, "cited sections that do not exist:\n" + "\n".join(missing)


def test_every_cited_invariant_is_defined() -> None:
    defined = defined_invariants()
    missing = []
    for name, number, line in cited_lines():
        for group in INVARIANT.findall(line):
            cited = {int(n) for n in re.findall(r"\d+", group)}
            if cited - defined:
                missing.append(f"{name}:{number}: invariant {sorted(cited - defined)}")
    assert not missing, (
        f"invariants that docs/ARCHITECTURE.md does not define ({sorted(defined)}):\n"
        + "\n".join(missing)
    )


def test_every_cited_test_exists() -> None:
    """A comment that says which test holds a behaviour must name one that does."""
    missing = []
    for name, number, line in cited_lines():
        for path, function in TEST.findall(line):
            test_file = ROOT / path
            if not test_file.is_file():
                missing.append(f"{name}:{number}: {path}")
            elif function and not re.search(
                rf"^\s*(?:async\s+)?(?:def|class)\s+{function}\b", test_file.read_text(),
                re.MULTILINE,
            ):  # fmt: skip
                missing.append(f"{name}:{number}: {path}::{function}")
    assert not missing, "cited tests that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        # joined with +, so that this file itself cites none of them
        ("# thread-safe (DESIGN" + ".md, invariant 1)", "document"),
        ('"""(docs/ARCHITECTURE.md, invariant ' + '99)"""', "invariant"),
        ("# tests/unit/test_no_such" + "_file.py holds this", "test"),
        ("# tests/unit/test_docs.py" + "::test_no_such_test holds this", "test"),
        ("# funasr reads it there (docs/FACTS" + '.md, "No such section")', "section"),
    ],
)
def test_the_checks_catch_each_kind_of_dangling_citation(line: str, problem: str) -> None:
    """The checks above read real files; this shows each one firing on a line that cites
    something that does not exist, so a check that silently matches nothing is caught."""
    if problem == "document":
        cited = DOCUMENT.findall(line)
        assert cited == ["DESIGN" + ".md"] and not (ROOT / cited[0]).exists()
    elif problem == "invariant":
        assert INVARIANT.findall(line) == ["99"] and 99 not in defined_invariants()
    elif problem == "section":
        assert SECTION.findall(line) == [("docs/FACTS.md", "No such section")]
    else:
        path, function = TEST.findall(line)[0]
        assert not (ROOT / path).is_file() or function == "test_no_such_test"
