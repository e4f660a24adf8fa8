"""The README's Settings table, from the settings' own docstrings.

`python scripts/settings_table.py` prints it; `--write` replaces the table in README.md.
tests/unit/test_docs.py fails when the README's table differs from this one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensevoice_server.settings import Settings, default_text, flag, variable  # noqa: E402

HEADER = "| variable | flag | default | meaning |"
TABLE = re.compile(r"^\| variable \| flag \| default \| meaning \|\n(?:\|.*\|\n)+", re.MULTILINE)


def rows() -> list[str]:
    out = [HEADER, "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        doc = " ".join((field.description or "").split())
        out.append(f"| `{variable(name)}` | `{flag(name)}` | {default_text(name)} | {doc} |")
    return out


def table() -> str:
    return "\n".join(rows()) + "\n"


def write(readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text()
    if not TABLE.search(text):
        raise SystemExit("README.md has no settings table to replace")
    readme.write_text(TABLE.sub(lambda _: table(), text, count=1))


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
    else:
        print(table(), end="")
