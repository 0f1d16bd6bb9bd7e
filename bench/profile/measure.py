"""Timing for `bench profile`: each network call alone, a few solver steps, FLOPs per call."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.counters import COUNTED_CALLS
from bench.execute import timed_solve, warmup_hparams
from bench.priors.base import Prior
from bench.seeding import generator_for
from bench.timing import Timing, timed
from operators.base import Degradation
from solvers import get_solver

PASSES = ("fwd", "fwd+bwd")
PROBE_T = 500  # the timestep of the isolated UNet calls (the cost does not depend on it)
Call = Callable[[], object]


@dataclass(frozen=True)
class CallTime:
    """One network pass at one batch, alone: seconds per call (least disturbed block of
    back-to-back calls, slowest block), process CPU seconds per call, and FLOPs."""

    network: str  # unet | dec | enc | op (bench.counters.COUNTED_CALLS)
    passes: str  # fwd | fwd+bwd
    batch: int
    seconds: float
    seconds_max: float
    cpu_seconds: float
    flops: int  # one call at this batch, forward (+ backward) as torch's FlopCounterMode counts


@dataclass(frozen=True)
class SolveTime:
    """A few steps of one solver through its real code, timed and counted like `bench run`,
    each solve paired with the same network calls made alone right after it (a round); the
    round with the median wall-time ratio is reported, and the median CPU-time ratio."""

    solver: str
    batch: int
    steps: int
    seconds: float
    cpu_seconds: float
    limit_seconds: float  # the solve's counted calls, each timed alone in the same round
    ratio: float  # harness / limit, wall time: median over rounds
    ratio_cpu: float  # the same in process CPU time
    rounds: int
    peak_mem_mb: float
    memory_kind: str
    calls: dict[str, int]


def generators(batch: int) -> list[torch.Generator]:
    """Fixed per-sample generators: profiling needs shapes, not particular draws."""
    return [generator_for("profile", i) for i in range(batch)]


def network_calls(
    prior: Prior, operator: Callable, batch: int, sigma_pm1: float
) -> dict[tuple[str, str], Call]:
    """Every network pass a solver makes, as a closure on inputs of the solve's shapes.

    fwd runs without a graph; fwd+bwd takes the gradient with respect to the network's input,
    as the solvers do (the weights are frozen), so it costs what the guidance step costs.
    """
    device, dtype = prior.device, prior.dtype
    z = torch.randn(batch, *prior.latent_shape, device=device, dtype=dtype)
    x = torch.rand(batch, 3, prior.image_size, prior.image_size, device=device, dtype=dtype)
    x = x * 2 - 1
    t = torch.full((batch,), PROBE_T, device=device, dtype=torch.long)
    networks = {
        "unet": (lambda v: prior.eps(v, t), z),
        "dec": (prior.decode, z),
        "enc": (lambda v: prior.encode(v, sample=True, generator=generators(batch)), x),
        "op": (lambda v: operator(v, sigma_pm1), z),
    }
    calls = {}
    for name, (fn, inp) in networks.items():
        calls[(name, "fwd")] = _forward(fn, inp)
        calls[(name, "fwd+bwd")] = _forward_backward(fn, inp)
    return calls


def _forward(fn: Callable, inp: torch.Tensor) -> Call:
    def call() -> object:
        with torch.no_grad():
            return fn(inp)

    return call


def _forward_backward(fn: Callable, inp: torch.Tensor) -> Call:
    def call() -> object:
        leaf = inp.detach().requires_grad_(True)
        out = fn(leaf)
        out.backward(torch.ones_like(out))  # FlopCounterMode's module hooks refuse autograd.grad
        return leaf.grad

    return call


def count_flops(call: Call) -> int:
    """FLOPs of one call (torch FlopCounterMode; attention on its math path so it is counted:
    the fused CPU/flash kernels are invisible to the counter)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def timings(call: Call, device: torch.device, repeats: int, block: int = 1) -> list[Timing]:
    """Synchronized wall and CPU time per call of `repeats` blocks of `block` back-to-back
    calls, after one untimed warm-up.

    A block as long as the timed solve makes the isolated time comparable with it: the fastest
    of several single calls is the luckiest call, while a solve's time is a sum over its calls
    (on a CPU at batch 1 the fastest single call was 1.5x faster than the slowest).
    """
    call()
    return [block_time(call, device, block) for _ in range(repeats)]


def block_time(call: Call, device: torch.device, block: int) -> Timing:
    """Synchronized wall and CPU seconds per call of `block` back-to-back calls."""
    with timed(device) as timing:
        for _ in range(block):
            call()
    return Timing(timing.seconds / block, timing.cpu_seconds / block)


def time_call(
    network: str,
    passes: str,
    call: Call,
    batch: int,
    device: torch.device,
    repeats: int,
    flops: int,
    block: int = 1,
) -> CallTime:
    """One network pass alone: `repeats` timed blocks of `block` calls (its FLOPs counted
    beforehand)."""
    runs = timings(call, device, repeats, block)
    seconds = [r.seconds for r in runs]
    cpu = min(r.cpu_seconds for r in runs)
    return CallTime(network, passes, batch, min(seconds), max(seconds), cpu, flops)


def time_solve(
    prior: Prior,
    op: Degradation,
    y: torch.Tensor,
    solver: str,
    hparams: dict,
    alone: dict[tuple[str, str], Call],
    *,
    sigma_pm1: float,
    steps: int,
    warmup_steps: int,
    rounds: int,
) -> SolveTime:
    """`steps` steps of the solver, timed and counted by the harness after a short warm-up, in
    `rounds` rounds of one solve and then each network pass it made, alone (`alone`), as a
    block of `steps` calls.

    Pairing each solve with its limit measured right after it cancels the drift of a shared or
    virtual machine's speed (on the 2-core VM it moved harness/limit by 30% between phases a
    minute apart, in CPU time too), as `farm-bench --vs` pairs its commands.
    """
    fn, batch = get_solver(solver).fn, y.shape[0]
    if warmup_steps:
        warm = {**warmup_hparams(hparams), "steps": warmup_steps}
        timed_solve(fn, prior, op, y, generators(batch), sigma_pm1, warm)
    hparams = {**hparams, "steps": steps}
    paired = []
    for _ in range(rounds):
        _, timing, calls = timed_solve(fn, prior, op, y, generators(batch), sigma_pm1, hparams)
        per_call = {key: block_time(alone[key], prior.device, steps) for key in passes_made(calls)}
        wall = weighted_calls(calls, {k: t.seconds for k, t in per_call.items()})
        cpu = weighted_calls(calls, {k: t.cpu_seconds for k, t in per_call.items()})
        paired.append(
            (ratio_of(timing.seconds, wall), ratio_of(timing.cpu_seconds, cpu), timing, wall, calls)
        )
    ranked = sorted(paired, key=lambda round_: round_[0])
    ratio, _, timing, wall, calls = ranked[(len(ranked) - 1) // 2]
    ratio_cpu = statistics.median(round_[1] for round_ in paired)
    return SolveTime(
        solver,
        batch,
        steps,
        timing.seconds,
        timing.cpu_seconds,
        wall,
        ratio,
        ratio_cpu,
        rounds,
        timing.peak_mem_mb,
        timing.memory_kind,
        calls,
    )


def ratio_of(harness: float, limit: float) -> float:
    """harness / limit; NaN for a solve that made no counted network call."""
    return harness / limit if limit > 0 else float("nan")


def passes_made(calls: dict[str, int]) -> dict[tuple[str, str], int]:
    """How many of each network pass a solve's counts stand for: each backward pass is one
    fwd+bwd pass, the forward passes without a backward are fwd passes (zeros left out)."""
    made = {}
    for network in COUNTED_CALLS:
        fwd, bwd = calls.get(f"{network}_fwd", 0), calls.get(f"{network}_bwd", 0)
        made[(network, "fwd+bwd")], made[(network, "fwd")] = bwd, max(fwd - bwd, 0)
    return {key: n for key, n in made.items() if n}


def weighted_calls(calls: dict[str, int], per_call: dict[tuple[str, str], float]) -> float:
    """Sum over the passes a solve made of their number x per-call cost (seconds or FLOPs
    alone); per_call needs only the passes made."""
    return sum(n * per_call[key] for key, n in passes_made(calls).items())
