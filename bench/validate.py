"""Checks of `bench run` options before any solve: each error names the option and its range."""

from __future__ import annotations

import math
import os
from pathlib import Path

from bench.store import records_dir, temp_path
from bench.sweep import SolverChoice

IMAGES_FORMS = "N >= 1 (the first N), a:b (a slice), image ids / indices, or @list"


def parse_sigmas(text: str) -> list[float]:
    """--sigma: comma-separated finite numbers >= 0 (noise std on the [0, 1] scale)."""
    valid = "valid: finite numbers >= 0 (noise std on the [0, 1] scale), comma-separated"
    sigmas = []
    for item in (t.strip() for t in text.split(",")):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--sigma {item!r} is not a number; {valid}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"--sigma {item} is out of range; {valid}")
        sigmas.append(value)
    return sigmas


def parse_seeds(text: str) -> list[int]:
    """--seeds: comma-separated integers >= 0."""
    seeds = []
    for item in (t.strip() for t in text.split(",")):
        value = int(item) if item.lstrip("-").isdigit() else -1
        if value < 0:
            raise ValueError(f"--seeds {item!r} is invalid; valid: integers >= 0, comma-separated")
        seeds.append(value)
    return seeds


def check_counts(steps: int | None, batch: int | None, workers: int) -> None:
    """--steps, --batch, --workers are positive integers (a config file bypasses typer's min)."""
    for name, value in (("--steps", steps), ("--batch", batch), ("--workers", workers)):
        if value is not None and value < 1:
            raise ValueError(f"{name} {value} is out of range; valid: integers >= 1")


def check_steps(solvers: list[SolverChoice], given: int | None, train_steps: int) -> None:
    """Every solver's diffusion steps lie in 1..the prior's training steps."""
    valid = f"valid: 1..{train_steps} (the prior's training steps)"
    if given is not None and not 1 <= given <= train_steps:
        raise ValueError(f"--steps {given} is out of range; {valid}")
    for choice in solvers:
        for hparams in choice.hparams.values():
            steps = hparams.get("steps", 1)
            if not isinstance(steps, int) or not 1 <= steps <= train_steps:
                raise ValueError(
                    f"steps={steps} of solver {choice.label} (--solvers/--set) is out of range; "
                    + valid
                )


def check_images(ids: list[str], spec: str | None, available: int) -> None:
    """--images selects at least one image."""
    if not ids:
        raise ValueError(
            f"--images {spec or '(default)'} selects no image of the {available} in the data set; "
            f"valid: {IMAGES_FORMS}"
        )


def check_out(out: Path) -> None:
    """--out is a folder or does not exist yet."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; valid: a folder (existing or new)")


def prepare_out(out: Path) -> None:
    """Create --out/records and prove a file can be written there (OSError names the path)."""
    folder = records_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    probe = temp_path(folder / "write-probe")
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    os.close(fd)
    probe.unlink()
