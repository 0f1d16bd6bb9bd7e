"""Properties every registered solver must have (batch-correct, deterministic, frozen, counted)."""

from __future__ import annotations

import pytest
import torch

from bench.counters import CountedPrior, counting
from bench.priors.gaussian import GaussianPrior
from operators import build_degradation, measure
from solvers import SOLVERS, SolverDiverged, get_solver

S = 12  # steps: enough to exercise every branch, cheap on the oracle
FAST: dict[str, dict] = {
    "resample": {"pixel_iters": 20, "latent_iters": 10},
}


def fast_hparams(name: str, degradation: str) -> dict:
    spec = get_solver(name)
    hp = spec.hparams(degradation, FAST.get(name, {}))
    if "steps" in hp:
        hp["steps"] = S
    return hp


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.fixture(scope="module")
def oracle() -> GaussianPrior:
    return GaussianPrior(image_size=16, factor=4)


def oracle_problem(prior, deg: str, batch: int, sigma_pm1: float = 0.02):
    op = build_degradation(deg, prior.image_size).seeded(gens(*range(50, 50 + batch)))
    x = prior.sample_images(gens(*range(batch)))
    return op, measure(op, x, sigma_pm1, gens(*range(100, 100 + batch)))


def solve(name, prior, op, y, seeds, **extra):
    hp = {**fast_hparams(name, op.name), **extra}
    return get_solver(name).fn(prior, op, y, generator=gens(*seeds), sigma_pm1=0.02, **hp)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_batch_of_four_equals_four_single_solves(oracle, name):
    """Per-sample masks, noise, norms and generators: no coupling through the batch."""
    op, y = oracle_problem(oracle, "inpaint-random", 4)
    batched = solve(name, oracle, op, y, range(10, 14))
    singles = []
    for i in range(4):
        op_i = build_degradation("inpaint-random", oracle.image_size).seeded(gens(50 + i))
        singles.append(solve(name, oracle, op_i, y[i : i + 1], [10 + i]))
    torch.testing.assert_close(batched, torch.cat(singles), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_deterministic_per_seed(oracle, name):
    op, y = oracle_problem(oracle, "sr4", 2)
    first = solve(name, oracle, op, y, [1, 2])
    assert torch.equal(first, solve(name, oracle, op, y, [1, 2]))
    if name != "naive":  # the naive row is deterministic by design
        assert not torch.allclose(first, solve(name, oracle, op, y, [3, 4]))
    assert first.min() >= -1 and first.max() <= 1


def tiny_extra(name: str) -> dict:
    """SILO needs H; a frozen random conv stands in for a trained operator here."""
    if name != "silo":
        return {}
    conv = torch.nn.Conv2d(4, 4, 3, padding=1).requires_grad_(False)
    return {"latent_operator": lambda z, sigma: conv(z)}


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_networks_stay_frozen(tiny_prior, name):
    """No network parameter requires or receives a gradient; only z_t does."""
    op = build_degradation("sr4", tiny_prior.image_size)
    x = torch.rand(1, 3, tiny_prior.image_size, tiny_prior.image_size) * 2 - 1
    y = measure(op, x, 0.02, gens(0))
    x_hat = solve(name, tiny_prior, op, y, [0], **tiny_extra(name))
    assert torch.isfinite(x_hat).all()
    for module in tiny_prior.modules().values():
        for p in module.parameters():
            assert not p.requires_grad and p.grad is None


COST_PER_STEP = {  # (unet f, unet b, dec f, dec b, enc f, enc b, op f, op b) per guided step
    "ldps": (1, 1, 1, 1, 0, 0, 0, 0),
    "silo": (1, 1, 0, 0, 0, 0, 1, 1),
    "unconditional": (1, 0, 0, 0, 0, 0, 0, 0),
    "psld": (1, 1, 1, 1, 1, 1, 0, 0),
    "gml-dps": (1, 1, 1, 1, 1, 1, 0, 0),
}
COST_ONCE = {  # calls outside the loop: the final decode, SILO's and naive's encodes
    "ldps": {"dec_fwd": 1},
    "silo": {"dec_fwd": 1, "enc_fwd": 1},
    "unconditional": {"dec_fwd": 1},
    "psld": {"dec_fwd": 1},
    "gml-dps": {"dec_fwd": 1},
    "naive": {"dec_fwd": 1, "enc_fwd": 1},
}
NAMES = ("unet_fwd", "unet_bwd", "dec_fwd", "dec_bwd", "enc_fwd", "enc_bwd", "op_fwd", "op_bwd")


@pytest.mark.parametrize("name", sorted(set(COST_ONCE) & set(SOLVERS)))
def test_call_counts_follow_each_cost_model(oracle, name):
    op, y = oracle_problem(oracle, "sr4", 2)
    with counting() as counts:
        solve(name, CountedPrior(oracle), op, y, [0, 1])
    per_step = COST_PER_STEP.get(name, (0,) * 8)
    expected = {n: S * k + COST_ONCE[name].get(n, 0) for n, k in zip(NAMES, per_step, strict=True)}
    assert {n: counts[n] for n in NAMES} == expected


@pytest.mark.parametrize("name", sorted(n for n in SOLVERS if get_solver(n).cost))
def test_declared_cost_models_match_the_counts(oracle, name):
    """The registry's cost model (used by --dry-run) is exact, or an upper bound (ReSample)."""
    op, y = oracle_problem(oracle, "sr4", 1)
    with counting() as counts:
        solve(name, CountedPrior(oracle), op, y, [0])
    declared = get_solver(name).cost(fast_hparams(name, "sr4"))
    measured = {n: counts[n] for n in (*NAMES, "opt_iters") if counts[n] or n in declared}
    if name == "resample":  # optimisers may stop early: the model is their cap
        assert all(measured.get(n, 0) <= declared.get(n, 0) for n in measured)
        assert measured["unet_bwd"] == declared["unet_bwd"]
        assert measured["enc_fwd"] == declared["enc_fwd"]
    else:
        assert measured == {n: v for n, v in declared.items() if v}


class NaNAfter:
    """A prior whose eps turns NaN from call `k` on."""

    def __init__(self, prior, k: int) -> None:
        self._prior, self.k, self.calls = prior, k, 0

    def eps(self, z, t):
        self.calls += 1
        out = self._prior.eps(z, t)
        return out * float("nan") if self.calls > self.k else out

    def __getattr__(self, name):
        return getattr(self._prior, name)


@pytest.mark.parametrize("name", sorted(set(SOLVERS) - {"naive"}))
def test_nan_raises_solver_diverged_with_step(oracle, name):
    op, y = oracle_problem(oracle, "sr4", 1)
    with pytest.raises(SolverDiverged) as info:
        solve(name, NaNAfter(oracle, 2), op, y, [0])
    assert info.value.step == 2
