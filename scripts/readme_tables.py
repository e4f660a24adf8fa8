"""The README's generated tables: the settings (from their docstrings) and the WebSocket
protocol (from sensevoice_server/live/protocol.py).

`python scripts/readme_tables.py` prints them; `--write` replaces them in README.md.
tests/unit/test_docs.py fails when the README's tables differ from these.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensevoice_server.live import protocol  # noqa: E402
from sensevoice_server.settings import Settings, default_text, flag, variable  # noqa: E402

SETTINGS_HEADER = "| variable | flag | default | meaning |"
SETTINGS = re.compile(r"^\| variable \| flag \| default \| meaning \|\n(?:\|.*\|\n)+", re.MULTILINE)
PROTOCOL = re.compile(r"(<!-- protocol: .*? -->\n)(.*?)(<!-- /protocol -->)", re.DOTALL)


def settings_table() -> str:
    out = [SETTINGS_HEADER, "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        doc = " ".join((field.description or "").split())
        out.append(f"| `{variable(name)}` | `{flag(name)}` | {default_text(name)} | {doc} |")
    return "\n".join(out) + "\n"


def protocol_table() -> str:
    return protocol.markdown() + "\n"


def write(readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text()
    if not SETTINGS.search(text) or not PROTOCOL.search(text):
        raise SystemExit("README.md lacks the settings table or the protocol markers")
    text = SETTINGS.sub(lambda _: settings_table(), text, count=1)
    text = PROTOCOL.sub(lambda m: m.group(1) + protocol_table() + m.group(3), text, count=1)
    readme.write_text(text)


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
    else:
        print(settings_table() + "\n" + protocol_table(), end="")
