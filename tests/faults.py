"""Fault-injection helpers: the suite's tally, a solve-logging `bench` entry point, a tmpfs.

Run as a script (`python tests/faults.py LOG GO N -- run ...`), it wraps the registered `ldps`
solver so every timed solve appends its batch size to LOG (and the first waits for all N
processes), waits for the file GO (so the processes plan at the same moment), then runs `bench`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TALLY: Counter = Counter()  # kills, lost cells, duplicate solves, bad inputs tried/rejected
WARMUP_STEPS = 2  # bench.execute.WARMUP_CAP: a solve at this many steps is the warm-up


def summary_line() -> str:
    """The one-line summary the issue asks for."""
    t = TALLY
    return (
        f"fault injection: kills survived {t['kills']} (SIGKILL {t['sigkill']}, SIGTERM "
        f"{t['sigterm']}), cells lost {t['lost']}, duplicate solves {t['duplicates']} "
        f"(concurrent runs {t['concurrent_runs']}), bad inputs rejected clearly "
        f"{t['rejected']}/{t['tried']}"
    )


def child_env() -> dict[str, str]:
    """A subprocess environment: this repo importable, one torch thread."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def bench_process(
    args: list[str], log: Path | None = None, go: Path | None = None, processes: int = 1, **kw
):
    """`bench ARGS` in a new process (through the solve logger when `log` is given)."""
    if log is None:
        cmd = [sys.executable, "-m", "bench.cli", *args]
    else:
        cmd = [sys.executable, __file__, str(log), str(go), str(processes), "--", *args]
    return subprocess.Popen(cmd, env=child_env(), **kw)


def solves(log: Path) -> Counter:
    """Timed solves per process id from a solve log (one 'pid batch' line per solve)."""
    counts: Counter = Counter()
    if log.exists():
        for line in log.read_text().split():
            pid, batch = line.split(":")
            counts[pid] += int(batch)
    return counts


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """Mount a tmpfs of `size` at `path` (root only); yields whether it is mounted."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def logged_solver(log: Path, processes: int):
    """The registered `ldps` spec, its every timed solve appending 'pid:batch' to `log`; the
    first solve of each process (its warm-up, a cell already claimed) waits until all
    `processes` got there, so each one holds a cell before any finishes one."""
    from dataclasses import replace

    from solvers import registry

    spec = registry.SOLVERS["ldps"]
    arrived: list[int] = []

    def logged(prior, op, y, **kwargs):
        if not arrived:
            arrived.append(os.getpid())
            Path(f"{log}.solving-{os.getpid()}").touch()
            deadline = time.monotonic() + 600
            while len(list(log.parent.glob(f"{log.name}.solving-*"))) < processes:
                assert time.monotonic() < deadline, "the other processes never started solving"
                time.sleep(0.02)
        x_hat = spec.fn(prior, op, y, **kwargs)
        if kwargs.get("steps") != WARMUP_STEPS:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            os.write(fd, f"{os.getpid()}:{len(y)}\n".encode())
            os.close(fd)
        return x_hat

    return replace(spec, fn=logged)


def _logged_main(log: Path, go: Path, processes: int, args: list[str]) -> None:
    from solvers import registry

    registry.SOLVERS["ldps"] = logged_solver(log, processes)
    from bench.cli import app

    Path(f"{log}.ready-{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.02)
    app(args, prog_name="bench")


if __name__ == "__main__":
    split = sys.argv.index("--")
    _logged_main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[split + 1 :])
