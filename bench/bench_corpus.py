"""Corpus labelling throughput: audio hours per hour, in-process against a Ray cluster.

Run: .venv/bin/python -m bench.bench_corpus [--clip-s 15] [--files 24] [--modes ...]

The corpus command (`python -m sensevoice_server.cli corpus`) over fresh clips (the English
sample tiled to --clip-s, each with its own seeded noise), on the full-size checkpoint with
the torch backend on CPU: in its own process (ncpu 2), and on a one-node Ray cluster started
here (4 logical CPUs on the machine's cores: room for the decode tasks beside the actors)
with one actor of 2 CPUs and with two actors of 1 CPU each, each into a fresh manifest.
Printed: the whole job's audio hours per hour (its start, the model's load and Ray's
included), when the first rows came (that fixed cost), and the steady rate from the first
rows to the last, timed from the progress line each file gets as its rows are written.
Ray's overhead per file is its steady cost per file less the in-process one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bench_throughput import fresh_clips
from bench.common import OUT, ROOT, app_env, print_table
from sensevoice_server.testing.ray_cluster import Cluster

MODES = {  # name: (what it is, the corpus flags; None: in-process)
    "in-process": ("in-process (ncpu 2)", None),
    "ray-1": ("Ray, 1 actor x 2 CPUs", ["--actors", "1", "--cpus-per-actor", "2"]),
    "ray-2": ("Ray, 2 actors x 1 CPU", ["--actors", "2", "--cpus-per-actor", "1"]),
}


@dataclass
class Run:
    wall_s: float  # the whole job: start, model load, every file
    row_times: list[float]  # seconds from the start at which each file's rows were written

    def steady_files_per_s(self) -> float:
        """Files per second once rows flow: from the first rows written to the last (the
        rows that came with the first are not counted: their work began before)."""
        first, last = self.row_times[0], self.row_times[-1]
        later = sum(t > first + 0.05 for t in self.row_times)
        return later / (last - first) if later else float("nan")


def label(clips: list[Path], env: dict[str, str], flags: list[str]) -> Run:
    """One corpus job over `clips` into a fresh manifest, timing the progress lines (one per
    file, as its rows are written)."""
    with tempfile.TemporaryDirectory(dir=OUT) as out:
        started = time.perf_counter()
        job = subprocess.Popen(
            [sys.executable, "-m", "sensevoice_server.cli", "corpus", *map(str, clips),
             "--out", out, *flags],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert job.stderr is not None
        row_times: list[float] = []
        tail: list[str] = []
        for line in job.stderr:
            if line.startswith("[") and ": transcribed (" in line:
                row_times.append(time.perf_counter() - started)
            tail = [*tail[-40:], line]
        wall_s = time.perf_counter() - started
    if job.wait() != 0 or len(row_times) != len(clips):
        raise SystemExit("corpus failed:\n" + "".join(tail))
    return Run(wall_s, row_times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip-s", type=int, default=15)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir=OUT, prefix="corpus-clips-"))
    clips = []
    for number, data in enumerate(fresh_clips(args.files, args.clip_s)):
        clips.append(folder / f"clip{number:03d}.wav")
        clips[-1].write_bytes(data)
    env = app_env(2, "torch")
    cluster = None
    rows: list[list[object]] = []
    per_file: dict[str, float] = {}
    try:
        for mode in args.modes.split(","):
            title, flags = MODES[mode]
            run_env = env
            if flags is not None:
                if cluster is None:
                    cluster = Cluster(OUT, nodes=1, cpus_per_node=4)
                    cluster.start()
                flags = [*flags, "--ray", cluster.address]
                run_env = {k: v for k, v in env.items() if k != "SENSEVOICE_NCPU"}
            run = label(clips, run_env, flags or [])
            rate = run.steady_files_per_s()
            per_file[mode] = 1 / rate
            overhead = per_file[mode] - per_file.get("in-process", per_file[mode])
            audio_s = args.files * args.clip_s
            rows.append([title, f"{run.wall_s:.1f}", f"{audio_s / run.wall_s:.1f}",
                         f"{run.row_times[0]:.1f}", f"{1 / rate:.2f}",
                         f"{rate * args.clip_s:.1f}",
                         f"{overhead:+.2f}" if flags else "-"])  # fmt: skip
            print(title, f"{run.wall_s:.1f} s", [round(t, 1) for t in run.row_times], flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder)
    print(f"\n{args.files} fresh {args.clip_s} s clips per run, full-size checkpoint, torch on "
          f"CPU ({os.cpu_count()} cores), result cache off\n")  # fmt: skip
    print_table(["mode", "job (s)", "audio h/h, whole job", "first rows at (s)",
                 "per file, steady (s)", "audio h/h, steady",
                 "per file vs in-process (s)"], rows)  # fmt: skip


if __name__ == "__main__":
    main()
