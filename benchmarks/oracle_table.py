"""The oracle table: every solver x {sr4, blur, inpaint} on the analytic Gaussian prior.

Runs `bench run` at the official step counts and hyperparameters (nothing overridden) and
prints mean psnr_post, post_ratio and residual_rms per solver and degradation.

    python benchmarks/oracle_table.py --images 8 --out runs/oracle-table
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pandas as pd

SOLVERS = "naive,unconditional,ldps,gml-dps,psld,resample,silo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solvers", default=SOLVERS, help="solver rows (bracket overrides ok)")
    parser.add_argument("--images", default="8")
    parser.add_argument("--sigma", default="0.01")
    parser.add_argument("--deg", default="sr4,blur,inpaint")
    parser.add_argument("--steps", default=None, help="override every solver's steps")
    parser.add_argument("--out", default="runs/oracle-table")
    args = parser.parse_args()
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        "--prior",
        "gaussian",
        "--solvers",
        args.solvers,
        "--deg",
        args.deg,
        "--images",
        args.images,
        "--sigma",
        args.sigma,
        "--batch",
        "8",
        "--out",
        args.out,
        "--no-save-images",
    ]
    if args.steps:
        cmd += ["--steps", args.steps]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    frame = pd.read_csv(f"{args.out}/per_image.csv")
    frame["degradation"] = frame.degradation.str.split(":").str[0]
    table = frame[frame.status == "ok"].pivot_table(
        index="solver_label",
        columns="degradation",
        values=["psnr_post", "post_ratio", "residual_rms"],
        aggfunc="mean",
    )
    print(table.round(3).to_string())
    print(
        f"\n{len(frame)} cells ({(frame.status != 'ok').sum()} failed), "
        f"sigma_01={args.sigma}, wall {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
