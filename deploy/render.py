"""Fill in a deploy/ template: `python deploy/render.py TEMPLATE OUT NAME=VALUE...`.

scripts/supervisor.sh calls this; the rendered files are plain Supervisor and nginx configs
that can be read, copied (e.g. to /etc/supervisor/conf.d/) and used as they are.

Three rules, nothing more:
1. `{{NAME}}` becomes the VALUE given for NAME; a placeholder left without one is an error.
2. A line holding `{{*NAME}}` is written once per word of NAME's value (nginx `server` lines,
   one per replica).
3. Supervisor templates: an `environment=` entry written `SENSEVOICE_X="default",` on its own
   line takes the value of SENSEVOICE_X from this process's environment when that is set, so
   `SENSEVOICE_MODEL=/models/x scripts/supervisor.sh start DIR` lands in the file. Any other
   SENSEVOICE_* variable that is set (a setting the template does not list) is added after the
   last listed one. Secrets are never written: they reach the app through supervisord's own
   environment, which Supervisor passes on to its programs.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
REPEATED = re.compile(r"\{\{\*([A-Z0-9_]+)\}\}")
SETTING_LINE = re.compile(r'^(?P<indent>\s+)(?P<name>SENSEVOICE_[A-Z0-9_]+)="(?P<value>[^"]*)",$')
SECRETS = {"SENSEVOICE_API_KEYS", "SENSEVOICE_UI_AUTH"}


def supervisor_quote(value: str) -> str:
    """A value Supervisor reads back unchanged: it %-expands values and splits on quotes."""
    if '"' in value or "\n" in value:
        raise SystemExit(f"render.py: a setting value may not hold quotes or newlines: {value!r}")
    return value.replace("%", "%%")


def fill_settings(lines: list[str], environ: dict[str, str]) -> list[str]:
    listed: set[str] = set()
    last, indent = -1, "    "
    out = []
    for line in lines:
        match = SETTING_LINE.match(line)
        if match:
            name, value = match["name"], match["value"]
            listed.add(name)
            # %(process_num)d and similar are per-process values, not defaults to override
            if name in environ and "%(" not in value and name not in SECRETS:
                line = f'{match["indent"]}{name}="{supervisor_quote(environ[name])}",'
            last = len(out)
            indent = match["indent"]
        out.append(line)
    if last >= 0:
        extra = sorted(
            name
            for name in environ
            if name.startswith("SENSEVOICE_") and name not in listed and name not in SECRETS
        )
        out[last + 1 : last + 1] = [
            f'{indent}{name}="{supervisor_quote(environ[name])}",' for name in extra
        ]
    return out


def value_of(name: str, values: dict[str, str]) -> str:
    if name not in values:
        raise SystemExit(f"render.py: no value given for {{{{{name}}}}}")
    return values[name]


def repeat_lines(lines: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for line in lines:
        match = REPEATED.search(line)
        if not match:
            out.append(line)
            continue
        words = value_of(match[1], values).split()
        out.extend(line[: match.start()] + word + line[match.end() :] for word in words)
    return out


def render(template: str, values: dict[str, str], environ: dict[str, str]) -> str:
    lines = repeat_lines(fill_settings(template.splitlines(), environ), values)
    return PLACEHOLDER.sub(lambda match: value_of(match[1], values), "\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    template, out, *pairs = argv
    values = dict(pair.split("=", 1) for pair in pairs)
    Path(out).write_text(render(Path(template).read_text(), values, dict(os.environ)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
