"""What `scripts/supervisor.sh status` and `start` print: each program as Supervisor sees it,
beside what its app says at /ready, one line each.

Supervisor calls a process STARTING until it has been up `startsecs` (60 s by default: the
window in which an exit counts as a failed start), long after the app may be ready; so both
STARTING and RUNNING show as "up", and /ready says whether the app takes work.

Usage (supervisor.sh runs it with the app's Python, which has supervisor installed):
  supervisor_programs.py status DIR
  supervisor_programs.py wait DIR SECONDS SCRIPT   until every app is ready (exit 0), one
                                                   fails for good (FATAL: exit 1, with the
                                                   end of its log), or SECONDS pass (exit 0)
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

UP = ("STARTING", "RUNNING")


@dataclass(frozen=True)
class Program:
    name: str  # as supervisorctl names it: "sensevoice", "sensevoice:sensevoice_7861"
    state: str  # Supervisor's: STARTING, RUNNING, BACKOFF, FATAL, ...
    shown: str  # what the line says: "up 0:00:31, pid 4242", or the state and why
    url: str | None  # the app (or nginx) it serves, if any
    ready: str | None  # the app's /ready status while it is up
    log: str


class Deployment:
    """The supervisord of one DIR that supervisor.sh rendered: its socket, its apps' URLs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        socket = f"unix://{directory}/supervisor.sock"
        proxy = xmlrpc.client.ServerProxy(
            "http://127.0.0.1", SupervisorTransport(None, None, socket)
        )
        self.supervisor: Any = proxy.supervisor
        self.apps = read_lines(directory / "apps")
        self.nginx = next(iter(read_lines(directory / "nginx-url")), None)
        conf = directory / "programs" / "sensevoice.conf"
        found = re.search(r"^startsecs=(\d+)", conf.read_text() if conf.exists() else "", re.M)
        self.startsecs = found.group(1) if found else "startsecs"

    def url_of(self, name: str) -> str | None:
        if name == "nginx":
            return self.nginx
        if name == "sensevoice" and self.apps:
            return self.apps[0]
        if name.startswith("sensevoice:sensevoice_"):  # replicas are named after their ports
            return "http://127.0.0.1:" + name.rsplit("_", 1)[1]
        return None

    def programs(self) -> list[Program]:
        found = []
        for info in self.supervisor.getAllProcessInfo():
            name = (
                info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"
            )
            up = info["statename"] in UP
            if up:
                shown = f"up {clock(info['now'] - info['start'])}, pid {info['pid']}"
            else:
                why = info["description"]
                shown = info["statename"] + (f": {why}" if why else "")
            url = self.url_of(name)
            ready = readiness(url) if url and up else None
            found.append(
                Program(name, info["statename"], shown, url, ready, info["stdout_logfile"])
            )
        return found

    def show(self, programs: list[Program]) -> None:
        for program in programs:
            line = f"{program.name:<30} {program.shown:<28}"
            if program.ready:
                line += f" {program.url}/ready: {program.ready}"
            print(line.rstrip())
        if any(program.state == "STARTING" for program in programs):
            print(f"(up less than {self.startsecs} s: Supervisor calls that STARTING, the window "
                  "in which an exit counts as a failed start)")  # fmt: skip


def read_lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def clock(seconds: int) -> str:
    seconds = max(0, seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def readiness(url: str) -> str:
    try:
        with urllib.request.urlopen(url + "/ready", timeout=3) as answer:
            return str(json.load(answer)["status"])
    except urllib.error.HTTPError as error:  # 503 while loading or draining: still an answer
        try:
            return str(json.load(error).get("status", error.code))
        except ValueError:
            return str(error.code)
    except OSError:
        return "not answering yet"


def log_tail(path: str, count: int = 3) -> list[str]:
    """The last distinct lines of a log: each of Supervisor's tries logs the same ones."""
    log = Path(path)
    tail = log.read_text(errors="replace").splitlines()[-20:] if log.is_file() else []
    return list(dict.fromkeys(reversed(tail)))[:count][::-1]


def wait(deployment: Deployment, limit_s: float, script: str) -> int:
    started, told = time.monotonic(), dict[str, str | None]()
    while True:
        programs = deployment.programs()
        waiting = [p for p in programs if p.url and p.ready != "ready"]
        failed = [p for p in programs if p.state == "FATAL"]
        elapsed = time.monotonic() - started
        if not waiting or failed or elapsed >= limit_s:
            break
        for program in waiting:
            if told.get(program.name) != program.ready or int(elapsed) % 15 == 0:
                state = program.ready or "not running"
                print(f"waiting for {program.name}: {state} ({elapsed:.0f} s)", flush=True)
                told[program.name] = program.ready
        time.sleep(1)
    deployment.show(programs)
    for program in failed:
        print(f"{program.name} failed to start; the end of {program.log}:",
              *log_tail(program.log), sep="\n    ")  # fmt: skip
    if failed:
        return 1
    if waiting and limit_s > 0:
        print(f"not ready after {limit_s:g} s (a first start may download or export the model): "
              f"`{script} status {deployment.directory}` says when it is")  # fmt: skip
    return 0


def main(argv: list[str]) -> int:
    mode, directory = argv[0], Path(argv[1])
    deployment = Deployment(directory)
    if mode == "status":
        deployment.show(deployment.programs())
        return 0
    return wait(deployment, float(argv[2]), argv[3])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
