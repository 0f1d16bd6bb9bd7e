"""`solve(name, prior, op, y)`: one call with the registry's per-degradation defaults and checks."""

from __future__ import annotations

import torch

from bench.priors.base import Prior
from operators.base import Degradation
from operators.noise import sigma_01_to_pm1
from solvers.registry import get_solver


def solve(
    name: str,
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    *,
    seed: int = 0,
    sigma_01: float = 0.0,
    **overrides: object,
) -> torch.Tensor:
    """x_hat in [-1, 1] for the batch y = op(x) + noise of std `sigma_01` (on [0, 1]).

    The solver runs with exactly the hyperparameters `bench run` would give it for this
    degradation (defaults < the official per-degradation values < `overrides`); an unknown
    override or a degradation the solver cannot run is a ValueError naming the valid choices.
    Sample i draws from torch.Generator().manual_seed(seed + i), so a batch gives the same
    result as its samples solved one at a time with seeds seed, seed + 1, ...
    """
    spec = get_solver(name)
    hparams = spec.hparams(op.name, overrides)
    why = spec.why_unsupported(op, hparams)
    if why is not None:
        raise ValueError(f"solver {name!r} cannot run {op.name!r}: {why}")
    generators = [torch.Generator().manual_seed(seed + i) for i in range(y.shape[0])]
    return spec.fn(
        prior, op, y, generator=generators, sigma_pm1=sigma_01_to_pm1(sigma_01), **hparams
    )
