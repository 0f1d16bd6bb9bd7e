"""Is one short warm-up enough? The first timed solve after it against the steady state.

`bench run` warms each solver up once per process with a solve capped at
`bench.execute.WARMUP_CAP` steps, then times every batch. This script checks that the first
timed solve is already within 2% of a steady state: in fresh processes it runs the warm-up
exactly as `solve_batch` does (or none, for contrast), then `--solves` timed solves of the same
batch through `bench.execute.timed_solve`, and prints first / median(later solves).

    OMP_NUM_THREADS=1 python benchmarks/warmup_steady.py --solvers silo,ldps --steps 100 \
        --processes 3 --solves 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def one_process(solver: str, steps: int, batch: int, solves: int, warmup: bool) -> list[float]:
    """Wall seconds of `solves` timed solves in this (fresh) process."""
    import torch

    from bench.execute import timed_solve, warmup_hparams
    from bench.profile.measure import generators
    from bench.profile.networks import profile_operator, profile_prior
    from operators import build_degradation, measure
    from operators.noise import sigma_01_to_pm1
    from solvers import get_solver

    prior = profile_prior("embedded", 64, "cpu", torch.float32)
    op = build_degradation("sr4", prior.image_size).seeded(generators(batch))
    sigma_pm1 = sigma_01_to_pm1(0.01)
    x = torch.rand(batch, 3, prior.image_size, prior.image_size, generator=generators(1)[0])
    y = measure(op, x * 2 - 1, sigma_pm1, generators(batch))
    spec = get_solver(solver)
    extra = (
        {"latent_operator": profile_operator(prior, op)} if "latent_operator" in spec.needs else {}
    )
    hparams = {**spec.hparams("sr4"), "steps": steps, **extra}
    if warmup:
        spec.fn(
            prior,
            op,
            y,
            generator=generators(batch),
            sigma_pm1=sigma_pm1,
            **warmup_hparams(hparams),
        )
    return [
        timed_solve(spec.fn, prior, op, y, generators(batch), sigma_pm1, hparams)[1].seconds
        for _ in range(solves)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solvers", default="silo,ldps")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--solves", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        solver, warmup = args.child.split(":")
        times = one_process(solver, args.steps, args.batch, args.solves, warmup == "1")
        print(json.dumps(times))
        return
    print("solver | warm-up | first timed solve / median of the later ones, per process | mean")
    for solver in args.solvers.split(","):
        for warmup in ("1", "0"):
            ratios = []
            for _ in range(args.processes):
                child = [*sys.argv, "--child", f"{solver}:{warmup}"]
                out = subprocess.run(
                    [sys.executable, *child], capture_output=True, text=True, check=True
                )
                times = json.loads(out.stdout.strip().splitlines()[-1])
                ratios.append(times[0] / statistics.median(times[1:]))
            label = "as bench run" if warmup == "1" else "none"
            cells = " ".join(f"{r:.3f}" for r in ratios)
            print(f"{solver} | {label} | {cells} | {statistics.mean(ratios):.3f}", flush=True)


if __name__ == "__main__":
    main()
