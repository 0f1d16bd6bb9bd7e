"""Does a solve do work beyond its network calls? Operator-level trace of both, side by side.

`bench profile`'s harness/limit compares a solve's time with its network calls made alone. When
it reads above 1, this script says where the difference is: in one process it times (thread CPU
seconds, alternating pairs) one solve of `--steps` steps through `bench.execute.timed_solve`
and the same network passes made alone (`bench.profile.measure.passes_made` of the solve's
counts), then traces each once with `torch.profiler` and prints the operators whose self CPU
time or call count differ most. Equal counts with proportional times mean the same work;
extra operators or calls are the solver's own loop.

    OMP_NUM_THREADS=1 python benchmarks/solve_vs_calls.py --solver silo --batch 8 --steps 10
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", default="silo")
    parser.add_argument("--arch", default="embedded", help="as `bench profile --arch`")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--deg", default="sr4")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3, help="timed (solve, calls) pairs")
    parser.add_argument("--top", type=int, default=25, help="operators to print")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.execute import timed_solve
    from bench.profile.measure import generators, network_calls, passes_made
    from bench.profile.networks import native_size, profile_operator, profile_prior
    from operators import build_degradation, measure
    from operators.noise import sigma_01_to_pm1
    from solvers import get_solver

    size = args.size or native_size(args.arch)
    prior = profile_prior(args.arch, size, "cpu", torch.float32)
    op = build_degradation(args.deg, size).seeded(generators(args.batch))
    operator = profile_operator(prior, op)
    sigma_pm1 = sigma_01_to_pm1(0.01)
    x = torch.rand(args.batch, 3, size, size, generator=generators(1)[0]) * 2 - 1
    y = measure(op, x, sigma_pm1, generators(args.batch))
    spec = get_solver(args.solver)
    hparams = {**spec.hparams(args.deg.split(":")[0]), "steps": args.steps}
    if "latent_operator" in spec.needs:
        hparams["latent_operator"] = operator
    alone = network_calls(prior, operator, args.batch, sigma_pm1)

    def solve() -> dict[str, int]:
        return timed_solve(spec.fn, prior, op, y, generators(args.batch), sigma_pm1, hparams)[2]

    made = passes_made(solve())

    def calls() -> None:
        for key, n in made.items():
            for _ in range(n):
                alone[key]()

    calls()
    print("passes per solve:", {f"{k[0]} {k[1]}": n for k, n in made.items()})
    for _ in range(args.pairs):
        seconds = []
        for fn in (solve, calls):
            start = time.thread_time()
            fn()
            seconds.append(time.thread_time() - start)
        print(
            f"thread CPU s: solve {seconds[0]:.3f}, calls alone {seconds[1]:.3f}, "
            f"ratio {seconds[0] / seconds[1]:.3f}"
        )
    traces = {}
    for name, fn in (("solve", solve), ("calls", calls)):
        with profile(activities=[ProfilerActivity.CPU]) as trace:
            fn()
        traces[name] = {e.key: (e.self_cpu_time_total / 1e3, e.count) for e in trace.key_averages()}
    solve_ops, call_ops = traces["solve"], traces["calls"]
    total = [sum(ms for ms, _ in ops.values()) for ops in (solve_ops, call_ops)]
    print(f"traced self CPU ms: solve {total[0]:.1f}, calls alone {total[1]:.1f}")
    print(f"{'operator':56s} {'solve ms':>9s} {'alone ms':>9s} {'solve n':>8s} {'alone n':>8s}")

    def row(key: str) -> tuple[float, float, int, int]:
        (ms_s, n_s), (ms_a, n_a) = solve_ops.get(key, (0, 0)), call_ops.get(key, (0, 0))
        return ms_s, ms_a, n_s, n_a

    def gap(key: str) -> float:
        ms_s, ms_a, n_s, n_a = row(key)
        return abs(ms_s / total[0] - ms_a / total[1]) + (n_s != n_a)

    for key in sorted(set(solve_ops) | set(call_ops), key=gap, reverse=True)[: args.top]:
        ms_s, ms_a, n_s, n_a = row(key)
        print(f"{key[:56]:56s} {ms_s:9.1f} {ms_a:9.1f} {n_s:8d} {n_a:8d}")


if __name__ == "__main__":
    main()
