"""Exit codes of `bench run`, SIGTERM as an exception, and per_image.csv on every way out."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.store import remove_orphan_temps, write_per_image_csv
from bench.validate import prepare_out

EXIT_BAD_INPUT = 2  # an option is invalid (the message names it and its valid range)
EXIT_CELLS_FAILED = 3  # the sweep finished, but some cells' records are failures
EXIT_FILESYSTEM = 4  # the run folder cannot be written (a file, read-only, disk full)
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM (a SLURM preemption, `kill`)


class Terminated(KeyboardInterrupt):
    """SIGTERM received: unwinds like Ctrl-C, so finished records stay and claims are freed."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def os_error_line(error: OSError, out: Path) -> str:
    """'cannot write <path>: No space left on device' (the finished cells are kept)."""
    where = error.filename or f"in {out}"
    reason = error.strerror or str(error)
    return (
        f"cannot write {where}: {reason}; every finished cell is kept, "
        "rerun the same command to resume once this is fixed"
    )


@contextmanager
def guarded_run(out: Path) -> Iterator[None]:
    """Prepare --out (OSError if it cannot be written), drop orphan temp files, turn SIGTERM
    into `Terminated`, and write per_image.csv however the block ends."""
    prepare_out(out)
    remove_orphan_temps(out)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        yield
    finally:
        if in_main:  # a second SIGTERM must not tear the final CSV
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            write_per_image_csv(out)
        except OSError as e:
            print(f"error: per_image.csv not updated: {os_error_line(e, out)}", file=sys.stderr)
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
