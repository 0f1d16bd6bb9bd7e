"""Tuned against untuned: each solver's PSNR minus naive's, paired per test image.

Reads the per-image tables of an untuned run and a `bench tune` test run on the same images
and prints, per solver x degradation (sigma and image set as in both), the mean PSNR, the mean
paired difference to `naive` and on how many images the solver beats naive.

    python benchmarks/tuned_vs_untuned.py results/embedded/per_image.csv \\
        runs/embedded-tune/test/per_image.csv --sigma 0.01
"""

from __future__ import annotations

import argparse

import pandas as pd

KEY = ["degradation", "image_id"]


def versus_naive(frame: pd.DataFrame) -> pd.DataFrame:
    """Per solver row and degradation: n, mean PSNR, mean(PSNR - naive's), images above naive."""
    ok = frame[frame.status == "ok"]
    naive = ok[ok.solver == "naive"].set_index(KEY).psnr
    rows = []
    for (label, deg), block in ok[ok.solver != "naive"].groupby(["solver_label", "degradation"]):
        diff = block.set_index(KEY).psnr - naive
        diff = diff.dropna()
        rows.append(
            {
                "solver": label,
                "degradation": deg,
                "n": len(diff),
                "psnr": block.psnr.mean(),
                "minus_naive": diff.mean(),
                "above_naive": f"{int((diff > 0).sum())}/{len(diff)}",
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("untuned", help="per_image.csv of the untuned run")
    parser.add_argument("tuned", help="per_image.csv of the `bench tune` test run")
    parser.add_argument("--sigma", type=float, default=0.01)
    parser.add_argument(
        "--markdown", action="store_true", help="one Markdown table: solver rows x degradations"
    )
    args = parser.parse_args()
    tuned = pd.read_csv(args.tuned).query("sigma_01 == @args.sigma")
    untuned = pd.read_csv(args.untuned)
    images = set(tuned.image_id)
    degs = set(tuned.degradation)
    untuned = untuned[
        (untuned.sigma_01 == args.sigma)
        & untuned.image_id.isin(images)
        & untuned.degradation.isin(degs)
    ]
    both = pd.concat([untuned, tuned[tuned.solver != "naive"]], ignore_index=True)
    table = versus_naive(both).sort_values(["degradation", "solver"])
    if args.markdown:
        print(markdown(table))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def markdown(table: pd.DataFrame) -> str:
    """Cells 'minus_naive (above/n)' with solver rows and a column per degradation."""
    cells = table.assign(
        degradation=table.degradation.str.split(":").str[0],
        cell=[f"{d:+.2f} ({a})" for d, a in zip(table.minus_naive, table.above_naive, strict=True)],
    ).pivot(index="solver", columns="degradation", values="cell")
    lines = [
        "| solver | " + " | ".join(cells.columns) + " |",
        "|---" * (len(cells.columns) + 1) + "|",
    ]
    for solver, row in cells.iterrows():
        lines.append(f"| {solver} | " + " | ".join(row.fillna("—")) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
