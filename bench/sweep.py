"""Cells and their keys: the Cartesian product a sweep runs (DESIGN.md §3 "Cell")."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field

from bench import __version__
from operators.base import Degradation

CODE_VERSION = __version__


@dataclass(frozen=True)
class Cell:
    """One solve: (prior, dataset, image, degradation, sigma, solver + hparams, seed)."""

    prior: str
    dataset: str
    image_id: str
    degradation: str  # canonical spec, e.g. "blur:sigma=3.0,size=61"
    sigma_01: float
    solver: str
    hparams: dict = field(hash=False)
    seed: int = 0
    solver_label: str = ""  # e.g. "ldps[zeta=3]"; names the row in tables, not part of the key
    artifacts: dict = field(default_factory=dict, hash=False)  # e.g. the operator file's sha

    @property
    def label(self) -> str:
        """The solver's row name: its label when the user gave per-solver overrides, else name."""
        return self.solver_label or self.solver

    @property
    def sigma_pm1(self) -> float:
        """The noise std on the [-1, 1] image range the official codes use (2 x sigma_01)."""
        return 2.0 * self.sigma_01

    def config(self) -> dict:
        """The canonical configuration the key hashes."""
        config = asdict(self)
        del config["solver_label"]
        if not config["artifacts"]:  # keys of solvers without trained artifacts stay as they were
            del config["artifacts"]
        return {**config, "code_version": CODE_VERSION}

    @property
    def key(self) -> str:
        """sha1 of the canonical JSON config (sorted keys), 16 hex digits."""
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    @property
    def group(self) -> tuple:
        """Cells that may share one batched solve: everything but the image."""
        return (
            self.solver,
            json.dumps(self.hparams, sort_keys=True),
            self.degradation,
            self.sigma_01,
            self.seed,
        )


def canonical_spec(op: Degradation) -> str:
    """'name:k1=v1,k2=v2' with every resolved parameter, sorted: the degradation in a cell key."""
    params = ",".join(f"{k}={v}" for k, v in sorted(op.params.items()))
    return f"{op.name}:{params}" if params else op.name


@dataclass(frozen=True)
class SolverChoice:
    """One solver row of a sweep: registered name, row label, hyperparameters per degradation."""

    name: str
    label: str
    hparams: dict[str, dict]  # degradation spec -> resolved hyperparameters
    artifacts: dict[str, dict] = field(default_factory=dict)  # degradation spec -> identities


def plan_cells(
    *,
    prior: str,
    dataset: str,
    image_ids: list[str],
    degradations: list[str],
    sigmas_01: list[float],
    solvers: list[SolverChoice],
    seeds: list[int],
) -> list[Cell]:
    """solvers x degradations x sigmas x seeds x images (the Cartesian product, in that order)."""
    label = {
        choice.label: choice.label if choice.label != choice.name else "" for choice in solvers
    }
    return [
        Cell(
            prior,
            dataset,
            image,
            deg,
            sigma,
            s.name,
            s.hparams[deg],
            seed,
            label[s.label],
            s.artifacts.get(deg, {}),
        )
        for s, deg, sigma, seed, image in itertools.product(
            solvers, degradations, sigmas_01, seeds, image_ids
        )
    ]


def split_top_level(text: str) -> list[str]:
    """Split on commas outside [...] and (...): 'silo,psld[omega=[0.5,1],gamma=0.1]' -> 2 items."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1, "(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError(f"unbalanced ']' or ')' in {text!r}")
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    if depth:
        raise ValueError(f"unbalanced '[' or '(' in {text!r}")
    items.append(current.strip())
    return [i for i in items if i]


def parse_solver_token(token: str) -> tuple[str, dict[str, str]]:
    """'psld[omega=0.5,gamma=[0.1,1]]' -> ('psld', {'omega': '0.5', 'gamma': '[0.1,1]'})."""
    name, bracket, rest = token.partition("[")
    if not bracket:
        return name.strip(), {}
    if not rest.endswith("]"):
        raise ValueError(f"solver spec {token!r} must end with ']'")
    overrides = {}
    for item in split_top_level(rest[:-1]):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"solver spec {token!r}: expected PARAM=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return name.strip(), overrides


def coerce_like(value: str, like: object) -> object:
    """Parse a CLI string to the type of the default it overrides (bool, int, float or str)."""
    if isinstance(like, bool):
        lowered = value.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected a boolean, got {value!r}")
        return lowered in ("true", "1", "yes")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    if like is None:  # an optional default: the literal's own type
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                pass
        return {"true": True, "false": False, "none": None}.get(value.lower(), value)
    return value


def parse_solver_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`--set ldps.zeta=3` items -> {"ldps": {"zeta": "3"}} (values parsed later by type)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        solver, dot, name = target.partition(".")
        if not sep or not dot or not solver or not name:
            raise ValueError(f"--set expects SOLVER.PARAM=VALUE, got {item!r}")
        out.setdefault(solver.strip(), {})[name.strip()] = value.strip()
    return out
