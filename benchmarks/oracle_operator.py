"""Train SILO's latent operator on the gaussian oracle and compare it with the exact map.

Prints the held-out relative error ||H(z) - H*(z)|| / ||H*(z)|| (mean over latents z ~ prior, at
sigma 0.02) and SILO's psnr_post / post_ratio with the trained H and with the exact H* on the
same measurements. The defaults (3000 steps of 4, lr 3e-3 decayed by a cosine) reach a 1.7 %
error in about two CPU-minutes on one thread; `--steps 1000 --batch 8` takes about one:

    python benchmarks/oracle_operator.py --deg sr4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bench import metrics
from bench.priors.gaussian import GaussianPrior
from bench.seeding import generator_for
from bench.train_operator import PriorSampleData, relative_error, train_operator
from operators import build_degradation, measure
from operators.latent import load_operator
from solvers.silo import silo


def silo_scores(prior: GaussianPrior, deg: str, h, images: int, steps: int) -> dict[str, float]:
    """Mean psnr_post and post_ratio of one batched SILO solve of the first oracle images."""
    sigma_pm1 = 0.02
    ids = range(images)
    x = prior.sample_images([generator_for("image", prior.name, f"{i:04d}") for i in ids])
    op = build_degradation(deg, prior.image_size).seeded([generator_for("mask", i) for i in ids])
    y = measure(op, x, sigma_pm1, [generator_for("noise", i) for i in ids])
    gens = [generator_for("solver", i) for i in ids]
    x_hat = silo(prior, op, y, generator=gens, sigma_pm1=sigma_pm1, steps=steps, latent_operator=h)
    psnr_post, ratio = [], []
    for i in ids:
        op_i = build_degradation(deg, prior.image_size).seeded([generator_for("mask", i)])
        post = prior.posterior(y[i], op_i, sigma_pm1)
        psnr_post.append(float(metrics.psnr(x_hat[i : i + 1], post.mean[None])[0]))
        ratio.append(metrics.post_ratio(x_hat[i], post.mean, post.trace))
    return {"psnr_post": sum(psnr_post) / images, "post_ratio": sum(ratio) / images}


def main() -> None:
    """Train, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deg", default="sr4")
    parser.add_argument("--variant", default="preserve", choices=["preserve", "noise-cnn"])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--loss", default="l1", choices=["l1", "mse"])
    parser.add_argument("--lr-schedule", default="cosine", choices=["constant", "cosine"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=8, help="SILO images per operator")
    parser.add_argument("--silo-steps", type=int, default=999)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = GaussianPrior()
    op = build_degradation(args.deg, prior.image_size)
    out = args.out or Path(tempfile.mkdtemp()) / "oracle_operator.pt"
    start = time.process_time()
    wall = time.perf_counter()
    result = train_operator(
        prior,
        op,
        PriorSampleData(prior),
        out=out,
        variant=args.variant,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        loss=args.loss,
        seed=args.seed,
        checkpoint_every=0,
        progress=False,
        lr_schedule=args.lr_schedule,
    )
    cpu_s, wall_s = time.process_time() - start, time.perf_counter() - wall
    h = load_operator(out, prior, op)
    exact = prior.exact_latent_operator(op)
    z = prior.sample_latents([generator_for("operator-heldout-latent", i) for i in range(256)])
    figures = {
        "deg": args.deg,
        "variant": args.variant,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "loss": args.loss,
        "lr_schedule": args.lr_schedule,
        "train_cpu_s": round(cpu_s, 1),
        "train_wall_s": round(wall_s, 1),
        "val_loss": result.val_loss,
        "relative_error": relative_error(h, exact, z, 0.02),
        "silo_steps": args.silo_steps,
        "silo_trained": silo_scores(prior, args.deg, h, args.images, args.silo_steps),
        "silo_exact": silo_scores(prior, args.deg, exact, args.images, args.silo_steps),
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
