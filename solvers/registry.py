"""The solver registry: `@register("ldps", ...)` and lookup by name (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from operators.base import Degradation

StepRange = tuple[float, float, int]  # (low, high, n): n log-spaced multiples of the official value


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver: the function, its defaults and its per-degradation defaults."""

    name: str
    fn: Callable[..., torch.Tensor]
    description: str
    defaults: dict = field(default_factory=dict)
    task_defaults: dict[str, dict] = field(default_factory=dict)
    cost: Callable[[dict], dict[str, int]] | None = None  # hparams -> network calls per solve
    needs: tuple[str, ...] = ()  # trained artifacts the solve loads, e.g. ("latent_operator",)
    unsupported: Callable[[Degradation, dict], str | None] | None = None  # (op, hparams) -> why
    step_sizes: dict[str, StepRange] = field(default_factory=dict)  # `bench tune --grid auto`

    def why_unsupported(self, op: Degradation, hparams: dict) -> str | None:
        """Why this solver cannot run `op` with these hyperparameters, or None if it can."""
        return self.unsupported(op, hparams) if self.unsupported is not None else None

    def hparams(self, degradation: str, overrides: dict | None = None) -> dict:
        """Resolved hyperparameters: defaults < per-degradation defaults < user overrides."""
        resolved = {**self.defaults, **self.task_defaults.get(degradation, {})}
        unknown = sorted(set(overrides or {}) - set(resolved))
        if unknown:
            raise ValueError(
                f"solver {self.name!r} has no hyperparameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(resolved)) or '(none)'}"
            )
        resolved.update(overrides or {})
        return resolved


SOLVERS: dict[str, SolverSpec] = {}


def register(
    name: str,
    *,
    description: str,
    defaults: dict | None = None,
    task_defaults: dict[str, dict] | None = None,
    cost: Callable[[dict], dict[str, int]] | None = None,
    needs: tuple[str, ...] = (),
    unsupported: Callable[[Degradation, dict], str | None] | None = None,
    step_sizes: dict[str, StepRange] | None = None,
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator adding a solve function to SOLVERS under `name`.

    `cost(hparams)` declares the network calls of one solve ({"unet_fwd": ..., "dec_bwd": ...};
    an upper bound where optimisers may stop early): `bench run --dry-run` totals it. `needs`
    names trained artifacts (SILO's latent operator) whose identity joins each cell's key.
    `unsupported(op, hparams)` says why a degradation is out of the solver's scope (the plan
    leaves those cells out and prints why), or None. `step_sizes` names the hyperparameters
    that are step sizes (their official values assume the official number of steps), each with
    its default tuning range as multiples of the official value: {"zeta": (0.1, 10, 5)} makes
    `bench tune --grid auto` try zeta x 0.1, 0.316, 1, 3.16, 10 on every degradation.
    """

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in SOLVERS:
            raise ValueError(f"solver {name!r} is already registered")
        SOLVERS[name] = SolverSpec(
            name,
            fn,
            description,
            defaults or {},
            task_defaults or {},
            cost=cost,
            needs=needs,
            unsupported=unsupported,
            step_sizes=step_sizes or {},
        )
        unknown = sorted(set(SOLVERS[name].step_sizes) - set(SOLVERS[name].defaults))
        if unknown:
            del SOLVERS[name]
            raise ValueError(f"solver {name!r}: step_sizes {unknown} are not in its defaults")
        return fn

    return wrap


def get_solver(name: str) -> SolverSpec:
    """The registered solver called `name`, or a ValueError listing the valid names."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(
            f"unknown solver {name!r}; valid solvers: {', '.join(sorted(SOLVERS))}"
        ) from None
