"""A local Ray cluster for the corpus tests and the corpus bench, started as a user starts
one (`ray start --block` per node) and bound to loopback.

Each node gets more logical CPUs than the machine has cores: an actor pool that took every
CPU would leave none for Ray Data's read and decode tasks, and the job would hang. Each node
is a process group of its own, and so is each of Ray's workers: stopping sends SIGTERM to
the groups, then SIGKILL (the GCS server ignores SIGTERM), then SIGKILL to every worker
found below the nodes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sensevoice_server.testing.servers import wait_until

RAY = str(Path(sys.executable).with_name("ray"))


class Cluster:
    """`nodes` nodes on this machine (a head, the others joining it), sharing one short
    temporary folder (Ray's sockets live there: a path of more than 107 characters breaks
    them). The nodes' environment has no SENSEVOICE_* variables: the corpus job must bring
    its own settings to its actors."""

    def __init__(self, logs: Path, *, nodes: int = 2, cpus_per_node: int = 4) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.address = f"127.0.0.1:{free_port_above(20000)}"
        self.logs = logs
        self.count, self.cpus_per_node = nodes, cpus_per_node
        self.nodes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        self.node("head", ["--head", "--port", port, "--include-dashboard=false"])
        assert wait_until(self.listening, 60), self.log_tail("head")
        for number in range(1, self.count):
            self.node(f"node{number}", ["--address", self.address])
        total = self.count * self.cpus_per_node
        assert wait_until(lambda: self.cpus() == total, 90), self.log_tail(f"node{self.count - 1}")

    def node(self, name: str, flags: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSEVOICE_")}
        common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus",
                  str(self.cpus_per_node), "--object-store-memory", str(200 * 1024**2),
                  "--disable-usage-stats", "--temp-dir", str(self.temp)]  # fmt: skip
        log = open(self.logs / f"ray-{name}.log", "wb")  # noqa: SIM115 (open while it runs)
        self.nodes.append(subprocess.Popen(
            [RAY, "start", *flags, *common], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        ))  # fmt: skip

    def listening(self) -> bool:
        host, port = self.address.rsplit(":", 1)
        with socket.socket() as sock:
            return sock.connect_ex((host, int(port))) == 0

    def cpus(self) -> float:
        """The cluster's logical CPUs, as `ray status` counts them (0 before it answers)."""
        status = subprocess.run([RAY, "status", "--address", self.address],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        for line in status.stdout.splitlines():  # "0.0/8.0 CPU"
            if line.strip().endswith(" CPU") and "/" in line:
                return float(line.split("/")[1].split()[0])
        return 0.0

    def stop(self) -> None:
        workers = [pid for node in self.nodes for pid in descendants(node.pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for node in self.nodes:
                quietly(os.killpg, node.pid, sig)
            if sig == signal.SIGTERM:
                wait_until(lambda: all(n.poll() is not None for n in self.nodes), 3)
        for pid in workers:
            quietly(os.kill, pid, signal.SIGKILL)
        for node in self.nodes:
            node.wait(10)
        assert wait_until(lambda: not any(alive(pid) for pid in workers), 10)
        shutil.rmtree(self.temp, ignore_errors=True)

    def log_tail(self, name: str) -> str:
        return (self.logs / f"ray-{name}.log").read_text(errors="replace")[-3000:]


def free_port_above(lowest: int) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port > lowest:
            return port


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: the parent of each)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def pids_running(title: str) -> list[int]:
    """Processes whose command line holds `title` (Ray names an actor's process after it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and title in (entry / "cmdline").read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def quietly(call: Callable[..., None], *args: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        call(*args)
