"""Evaluate the shipped embedded prior: held-out VAE PSNR, reconstruction and sample grids.

    python benchmarks/eval_embedded.py [--samples 16] [--steps 250] [--out results/embedded]

Writes vae_recon.png (held-out crops, odd rows: originals, even rows: reconstructions),
samples.png (unconditional DDPM samples via the `unconditional` solver) and metrics.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.embedded_data import embedded_heldout_source
from bench.priors.embedded import WEIGHTS_DIR, load_embedded_prior
from solvers import get_solver


def grid(images: torch.Tensor, cols: int, pad: int = 2) -> Image.Image:
    """(N, 3, S, S) images in [-1, 1] tiled into a PIL grid with `cols` columns."""
    n, _, s, _ = images.shape
    rows = -(-n // cols)
    canvas = np.ones((rows * (s + pad) + pad, cols * (s + pad) + pad, 3), dtype=np.uint8) * 255
    a = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    for k in range(n):
        r, c = divmod(k, cols)
        top, left = pad + r * (s + pad), pad + c * (s + pad)
        canvas[top : top + s, left : left + s] = a[k]
    return Image.fromarray(canvas)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB on the [0, 1] scale of images in [-1, 1]."""
    mse = ((x.clamp(-1, 1) - ref) / 2).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse)


def main() -> None:
    """Measure and draw; print a one-line summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--steps", type=int, default=250, help="DDPM steps for the samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/embedded"))
    ap.add_argument("--weights", type=Path, default=WEIGHTS_DIR, help="exported folder")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    prior = load_embedded_prior(folder=args.weights)
    source = embedded_heldout_source(prior.image_size)
    x = torch.stack([source.load(i) for i in source.ids])
    with torch.no_grad():
        rec = prior.decode(prior.encode(x, sample=False)).clamp(-1, 1)
    scores = psnr(rec, x)
    rows = [t for pair in zip(x.split(8), rec.split(8), strict=True) for t in pair]
    grid(torch.cat(rows), cols=8).save(args.out / "vae_recon.png")
    gens = [torch.Generator().manual_seed(args.seed * 1000 + k) for k in range(args.samples)]
    t0 = time.perf_counter()
    samples = get_solver("unconditional").fn(
        prior, None, None, generator=gens, sigma_pm1=0.0, steps=args.steps
    )
    sample_s = time.perf_counter() - t0
    grid(samples, cols=8).save(args.out / "samples.png")
    metrics = {
        "heldout_vae_psnr_mean": float(scores.mean()),
        "heldout_vae_psnr_min": float(scores.min()),
        "heldout_vae_psnr": dict(zip(source.ids, scores.tolist(), strict=True)),
        "samples": args.samples,
        "sample_steps": args.steps,
        "sample_time_s": round(sample_s, 1),
        "sample_std": float(samples.std()),
        "seed": args.seed,
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(
        f"held-out VAE PSNR {metrics['heldout_vae_psnr_mean']:.2f} dB (min "
        f"{metrics['heldout_vae_psnr_min']:.2f}); {args.samples} samples in {sample_s:.0f} s "
        f"-> {args.out}"
    )


if __name__ == "__main__":
    main()
