"""Print the settings as the Markdown table in the README (regenerate it after adding one)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensevoice_server.settings import Settings


def rows() -> list[str]:
    out = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "" if field.default_factory else field.default
        if name == "ncpu":
            default = "cores given to the process"
        elif name == "model_aliases":
            default = "whisper-1"
        elif field.default_factory:
            default = "(none)"
        doc = " ".join((field.description or "").split())
        flag = "--" + name.replace("_", "-")
        out.append(f"| `SENSEVOICE_{name.upper()}` | `{flag}` | `{default}` | {doc} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
