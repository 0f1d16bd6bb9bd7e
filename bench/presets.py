"""Presets: a paper's setting as a TOML file shipped in the package (`bench run --preset NAME`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tomllib

PRESET_FOLDER = Path(__file__).resolve().parent / "presets"
SOLVER_DEFAULTS = "solver_defaults"  # [solver_defaults.SOLVER.DEGRADATION] hparam = value


@dataclass(frozen=True)
class Preset:
    """A named setting: `bench run` option values and per-degradation solver defaults."""

    name: str
    description: str
    options: dict
    solver_defaults: dict[str, dict[str, dict]] = field(default_factory=dict)


def preset_names() -> list[str]:
    """The shipped presets, sorted."""
    return sorted(p.stem for p in PRESET_FOLDER.glob("*.toml"))


def load_preset(name: str) -> Preset:
    """The shipped preset `name`; a ValueError listing the valid names otherwise."""
    path = PRESET_FOLDER / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown --preset {name!r}; valid: {', '.join(preset_names())}")
    data = tomllib.loads(path.read_text())
    defaults = data.pop(SOLVER_DEFAULTS, {})
    description = data.pop("description", "")
    for solver, per_task in defaults.items():
        if not isinstance(per_task, dict) or not all(
            isinstance(v, dict) for v in per_task.values()
        ):
            raise ValueError(
                f"{path}: [{SOLVER_DEFAULTS}.{solver}] must hold one table per degradation"
            )
    return Preset(name, description, data, defaults)


def preset_solver_defaults(name: str | None) -> dict[str, dict[str, dict]]:
    """{solver: {degradation name: {hparam: value}}} of preset `name` ({} for None)."""
    return load_preset(name).solver_defaults if name else {}
