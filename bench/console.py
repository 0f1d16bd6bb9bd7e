"""Rich consoles that never cut a table when the output is a pipe or a log file."""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 10_000  # not a terminal: tables take their content's width, paths stay whole


def output_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width, else wide enough for any table."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)
