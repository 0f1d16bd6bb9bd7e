"""Plain progress for logs (CI, SLURM .out files): one line per finished batch of cells."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def clock(seconds: float) -> str:
    """1234.5 -> '0:20:34'."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class ProgressLines:
    """Cells done/total, elapsed, ETA and the running means, written once per finished batch."""

    total: int
    write: Callable[[str], None]
    done: int = 0
    start: float = field(default_factory=time.perf_counter)

    def finished(self, cells: int, summary: str = "") -> str:
        """Count `cells` more as done and write (and return) the line."""
        self.done += cells
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        line = f"{self.done}/{self.total} cells, {clock(elapsed)} elapsed, ETA {clock(eta)}"
        line += f" | {summary}" if summary else ""
        self.write(line)
        return line
