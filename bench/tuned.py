"""Tuned points (the `tuned` table of tuned.toml): validated and applied to a sweep's cells."""

from __future__ import annotations

from dataclasses import replace

from bench.sweep import Cell

TUNED_KEYS = {"solver", "degradation", "sigma_01", "hparams"}  # and steps, if the solver has them
TUNED_TAG = "tuned"


def check_tuned(entries: object) -> list[dict]:
    """The `tuned` option: tables of solver, degradation, sigma_01, hparams (and steps)."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError("option 'tuned' expects a list of tables ([[tuned]] in TOML)")
    for entry in entries:
        missing = sorted(TUNED_KEYS - set(entry))
        if missing:
            raise ValueError(f"a [[tuned]] entry lacks {', '.join(missing)}: {entry}")
        if not isinstance(entry["hparams"], dict):
            raise ValueError(f"[[tuned]] hparams must be a table, got {entry['hparams']!r}")
    return entries


def tuned_label(label: str) -> str:
    """'ldps' -> 'ldps[tuned]', 'resample[pixel_iters=200]' -> 'resample[pixel_iters=200,tuned]'."""
    return f"{label[:-1]},{TUNED_TAG}]" if label.endswith("]") else f"{label}[{TUNED_TAG}]"


def matches(cell: Cell, entry: dict) -> bool:
    """The entry was tuned for this cell's (solver, degradation, sigma, steps)."""
    return (
        cell.solver == entry["solver"]
        and cell.degradation == entry["degradation"]
        and cell.sigma_01 == float(entry["sigma_01"])
        and cell.hparams.get("steps") == entry.get("steps")
    )


def apply_tuned(cells: list[Cell], tuned: list[dict]) -> list[Cell]:
    """Each cell with a tuned entry takes the entry's hyperparameters and a '[tuned]' label."""
    out = []
    for cell in cells:
        entry = next((e for e in tuned if matches(cell, e)), None)
        if entry is not None:
            unknown = sorted(set(entry["hparams"]) - set(cell.hparams))
            if unknown:
                raise ValueError(
                    f"[[tuned]] entry for {cell.solver} sets unknown hyperparameter(s) "
                    f"{', '.join(unknown)}; valid: {', '.join(sorted(cell.hparams))}"
                )
            cell = replace(
                cell,
                hparams={**cell.hparams, **entry["hparams"]},
                solver_label=tuned_label(cell.label),
            )
        out.append(cell)
    return out
