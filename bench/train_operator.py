"""`bench train-operator`: fit SILO's latent operator H(E(x)) ~ E(A(x) + n) (silo.md §3).

One sigma per batch from U(0, sigma_max) on the [-1, 1] scale, H conditioned on it; mean L1
(or MSE) between H's output and the encoder sample of the (SR: bicubic-upsampled) noisy
measurement; encoder samples, not means, for both sides (the oracle's encoder is
deterministic). Photos get the paper's augmentations (random resized crop 0.75-1, horizontal
and vertical flips, brightness 0.05 / hue 0.005 jitter); the gaussian oracle's own samples get
none, since its prior is neither flip- nor crop-invariant. Everything random comes from one
generator seeded by `seed`, whose state the checkpoint keeps, so a resumed run continues the
uninterrupted one exactly.

Deviations from the official training scripts: batches are drawn with replacement instead of
by epochs; the readout variant's features are computed at a per-sample t ~ U{1..T-1} with the
UNet called at the same t the noise was added at, and its bottlenecks get that t's embedding
(silo.md §8, pitfalls 1 and 4); the SR target is upsampled bicubically, as at sampling
(pitfall 3); the targets are not clamped to [-4, 4].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torchvision.transforms import v2

from bench.data import ImageSource
from bench.priors import load_prior
from bench.priors.base import Prior
from bench.seeding import generator_for, randn_per_sample
from bench.sweep import canonical_spec
from bench.train_operator_help import TRAIN_OPERATOR_HELP  # noqa: F401  (re-exported)
from operators import build_degradation
from operators.base import Degradation
from operators.latent.checkpoint import base_metadata, read_checkpoint, save_checkpoint
from operators.latent.factory import (
    build_network,
    get_variant,
    network_architecture,
    parameter_count,
    prior_unet,
)
from operators.latent.lookup import user_cache_folder
from operators.latent.naming import operator_filename
from operators.latent.readout import UNetFeatureReader, UNetFeatures

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss,
    "mse": F.mse_loss,
}
ORACLE_VAL_IMAGES = 64
LR_SCHEDULES = ("constant", "cosine")


def parse_widths(text: str | None) -> tuple[int, int] | None:
    """'32,96' -> (32, 96); None stays None (the reference widths)."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--widths takes BASE,MIDDLE channel counts, e.g. 32,96; got {text!r}")
    return int(parts[0]), int(parts[1])


def augmentation(size: int) -> v2.Compose:
    """The paper's training augmentations on [0, 1] images (silo.md §3)."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.75, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.ColorJitter(brightness=0.05, hue=0.005),
        ]
    )


class TrainingData(Protocol):
    """Training batches and a fixed validation set of images in [-1, 1]."""

    def batch(self, seed: int, size: int) -> torch.Tensor:
        """(size, 3, S, S) training images; the same seed gives the same batch."""
        ...

    def validation(self) -> torch.Tensor:
        """(n, 3, S, S) held-out images, the same on every call."""
        ...

    def describe(self) -> dict:
        """What the checkpoint records about the data."""
        ...


@dataclass
class ImageSourceData:
    """An ImageSource split into validation (the first ids) and training (the rest)."""

    source: ImageSource
    val_fraction: float = 0.05
    augment: bool = True
    val_ids: list[str] = field(init=False)
    train_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        n_val = max(1, round(len(self.source.ids) * self.val_fraction))
        if len(self.source.ids) - n_val < 1:
            raise ValueError(
                f"data set {self.source.name!r} has {len(self.source.ids)} images: too few to "
                f"hold out {n_val} for validation and train on the rest"
            )
        self.val_ids, self.train_ids = self.source.ids[:n_val], self.source.ids[n_val:]

    def batch(self, seed: int, size: int) -> torch.Tensor:
        """Images drawn with replacement, augmented under a global RNG seeded by `seed`."""
        g = torch.Generator().manual_seed(seed)
        picks = torch.randint(len(self.train_ids), (size,), generator=g).tolist()
        images = [self.source.load(self.train_ids[i]) for i in picks]
        if not self.augment:
            return torch.stack(images)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            augment = augmentation(images[0].shape[-1])
            return torch.stack([augment((x + 1) / 2).clamp(0, 1) * 2 - 1 for x in images])

    def validation(self) -> torch.Tensor:
        """The held-out images, unaugmented (resized and centre-cropped by the source)."""
        return torch.stack([self.source.load(i) for i in self.val_ids])

    def describe(self) -> dict:
        """Source name, split sizes, augmentation flag."""
        return {
            "name": self.source.name,
            "n_train": len(self.train_ids),
            "n_val": len(self.val_ids),
            "augment": self.augment,
        }


@dataclass
class PriorSampleData:
    """Fresh ground truth from the prior every step; a fixed held-out set for validation.

    The draws use their own seeding keys, so neither set overlaps the images `bench run`
    evaluates on (those are keyed by image id).
    """

    prior: Prior
    val_count: int = ORACLE_VAL_IMAGES

    def batch(self, seed: int, size: int) -> torch.Tensor:
        """size new draws x = D(z0), z0 ~ prior."""
        gens = [generator_for("operator-train-image", seed, i) for i in range(size)]
        return self.prior.sample_images(gens)

    def validation(self) -> torch.Tensor:
        """val_count fixed draws."""
        gens = [generator_for("operator-val-image", i) for i in range(self.val_count)]
        return self.prior.sample_images(gens)

    def describe(self) -> dict:
        """The oracle's samples, never augmented."""
        return {"name": f"{self.prior.name}-samples", "n_val": self.val_count, "augment": False}


def generators(purpose: str, seed: object, n: int) -> list[torch.Generator]:
    """n per-sample generators for one purpose of one step (or of the validation set)."""
    return [generator_for("operator", purpose, seed, i) for i in range(n)]


def training_pair(
    prior: Prior,
    op: Degradation,
    x: torch.Tensor,
    sigma: torch.Tensor,
    seed: object,
    reader: UNetFeatureReader | None,
) -> tuple[torch.Tensor | UNetFeatures, torch.Tensor, torch.Tensor | None]:
    """(H's input, target E(up(A(x) + sigma n)), mask or None) for images x (silo.md §3).

    H's input is the encoder sample E(x), or with a reader the UNet's up-block features at a
    noised z_t = sqrt(abar_t) E(x) + sqrt(1 - abar_t) eps, t ~ U{1..T-1} per sample.
    """
    b = x.shape[0]
    seeded = op.seeded(generators("mask", seed, b))
    y = seeded.forward(x)
    noise = randn_per_sample(tuple(y.shape[1:]), generators("noise", seed, b), dtype=y.dtype)
    y = y + sigma.to(y).reshape(-1, 1, 1, 1) * noise.to(y.device)
    up = seeded.upsample_for_encoding(y)
    target = prior.encode(up, sample=True, generator=generators("target", seed, b))
    z = prior.encode(x, sample=True, generator=generators("input", seed, b))
    mask = getattr(seeded, "mask", None) if reader is not None else None
    if reader is None:
        return z, target, mask
    n_train = len(prior.alphas_cumprod)
    t = torch.cat([torch.randint(1, n_train, (1,), generator=g) for g in generators("t", seed, b)])
    abar = prior.alphas_cumprod[t].to(z).reshape(-1, 1, 1, 1)
    eps = randn_per_sample(tuple(z.shape[1:]), generators("eps", seed, b), dtype=z.dtype)
    z_t = abar.sqrt() * z + (1 - abar).sqrt() * eps.to(z.device)
    with reader.capture() as features:
        prior.eps(z_t, t.to(z.device))
    return features, target, mask


def network_input(inp: torch.Tensor | UNetFeatures, net: nn.Module) -> torch.Tensor | UNetFeatures:
    """Latents cast to the network's dtype (features are cast by the readout network)."""
    if isinstance(inp, UNetFeatures):
        return inp
    return inp.to(next(net.parameters()).dtype)


@torch.no_grad()
def validation_loss(
    prior: Prior,
    op: Degradation,
    net: nn.Module,
    images: torch.Tensor,
    sigma_max: float,
    loss: str,
    reader: UNetFeatureReader | None,
    batch: int,
) -> float:
    """Mean loss over the held-out images, sigma_i spread evenly over (0, sigma_max)."""
    n = images.shape[0]
    sigmas = sigma_max * (torch.arange(n, dtype=torch.float64) + 0.5) / n
    total = 0.0
    for start in range(0, n, batch):
        x = images[start : start + batch].to(prior.device, prior.dtype)
        s = sigmas[start : start + batch]
        inp, target, mask = training_pair(prior, op, x, s, ("val", start), reader)
        pred = net(network_input(inp, net), s.float().to(prior.device), mask)
        total += float(LOSSES[loss](pred, target.to(pred.dtype))) * x.shape[0]
    return total / n


def scheduled_lr(base: float, step: int, steps: int, schedule: str) -> float:
    """The learning rate of step `step` of `steps`: constant (silo.md §3) or cosine to 0."""
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * step / steps))
    return base


def make_optimizer(variant: str, net: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam for the CNNs, AdamW with weight decay 0 for readout, no schedule (silo.md §3)."""
    if get_variant(variant).optimizer == "adamw":
        return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    return torch.optim.Adam(net.parameters(), lr=lr)


@dataclass(frozen=True)
class TrainResult:
    """Where the checkpoint went and how training ended."""

    path: Path
    step: int
    train_loss: float | None
    val_loss: float
    history: list[dict]


def default_out(prior_id: str, op: Degradation, variant: str) -> Path:
    """The user cache folder's file for (prior, degradation, variant), where lookup finds it."""
    return user_cache_folder() / operator_filename(prior_id, canonical_spec(op), variant)


def check_resume(saved: dict, expected: dict, path: Path) -> None:
    """Raise ValueError unless the checkpoint was made by the same kind of run."""
    keys = ("prior_key", "degradation", "variant", "architecture", "sigma_range", "loss")
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r}, run {expected[k]!r}"
        for k in keys
        if saved.get(k) != expected[k]
    ]
    if diffs:
        raise ValueError(f"cannot resume from {path}:\n  " + "\n  ".join(diffs))


def train_operator(
    prior: Prior,
    op: Degradation,
    data: TrainingData,
    *,
    out: Path | None = None,
    variant: str = "preserve",
    steps: int = 2000,
    batch: int = 16,
    lr: float | None = None,
    sigma_max: float | None = None,
    loss: str = "l1",
    seed: int = 0,
    checkpoint_every: int = 500,
    resume: Path | None = None,
    prior_id: str | None = None,
    progress: bool = True,
    lr_schedule: str = "constant",
    widths: tuple[int, int] | None = None,
) -> TrainResult:
    """Train the variant's H for (prior, op) on data; checkpoint to `out` (silo.md §3).

    `steps` is the total: a resumed run continues from the checkpoint's step up to it. The
    official recipe keeps the learning rate constant; `lr_schedule="cosine"` decays it to 0
    over `steps` (not in the paper; it helps the oracle reach a tight fit in few steps).
    """
    spec = get_variant(variant)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    if steps < 1 or batch < 1:
        raise ValueError(f"--steps and --batch must be >= 1, got {steps} and {batch}")
    prior_id = prior_id or prior.name
    sigma_max = spec.sigma_max if sigma_max is None else sigma_max
    if sigma_max < 0:
        raise ValueError(f"--sigma-max must be >= 0, got {sigma_max}")
    arch = network_architecture(variant, prior, op, widths)
    out = Path(out) if out is not None else default_out(prior_id, op, variant)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(arch, prior).to(prior.device)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
    base_lr = lr or spec.lr
    optimizer = make_optimizer(variant, net, base_lr)
    rng = torch.Generator().manual_seed(seed)
    metadata = {
        **base_metadata(prior_id, prior, op, arch),
        "input_kind": spec.input_kind,
        "parameters": parameter_count(net),
        "sigma_range": [0.0, sigma_max],
        "sigma_scale": "[-1, 1] images",
        "loss": loss,
        "optimizer": spec.optimizer,
        "lr_schedule": lr_schedule,
        "prompt": getattr(prior, "prompt", None),
        "data": data.describe(),
        "seed": seed,
    }
    step, history = 0, []
    if resume is not None:
        saved = read_checkpoint(resume)
        check_resume(saved["metadata"], metadata, Path(resume))
        net.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.set_state(saved["rng"]["generator"])
        step, history = saved["step"], list(saved["metadata"].get("history", []))
        base_lr = lr or saved["metadata"].get("lr") or spec.lr
        keep = ("seed", "steps", "train_loss", "val_loss", "batch")
        metadata.update({k: saved["metadata"].get(k) for k in keep}, history=history, lr=base_lr)
    reader = UNetFeatureReader(prior_unet(prior)) if spec.input_kind == "unet_features" else None
    val_images = data.validation()

    def validate() -> float:
        return validation_loss(prior, op, net, val_images, sigma_max, loss, reader, batch)

    if not history:
        history.append({"step": 0, "train_loss": None, "val_loss": validate()})
    window: list[float] = []
    console = Console(stderr=True)
    columns = (
        TextColumn("training H"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    saved_at = None
    with Progress(*columns, console=console, disable=not (progress and console.is_terminal)) as bar:
        task = bar.add_task("train", total=steps, completed=step, loss="-")
        while step < steps:
            step_seed = int(torch.randint(0, 2**62, (1,), generator=rng))
            sigma = sigma_max * float(torch.rand((), generator=rng, dtype=torch.float64))
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(base_lr, step, steps, lr_schedule)
            x = data.batch(step_seed, batch).to(prior.device, prior.dtype)
            with torch.no_grad():
                s = torch.full((batch,), sigma, dtype=torch.float64)
                inp, target, mask = training_pair(prior, op, x, s, step_seed, reader)
            pred = net(network_input(inp, net), sigma, mask)
            value = LOSSES[loss](pred, target.to(pred.dtype))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            step += 1
            window.append(value.item())
            bar.update(task, advance=1, loss=f"{window[-1]:.4f}")
            if step == steps or (checkpoint_every > 0 and step % checkpoint_every == 0):
                train_loss = sum(window) / len(window)
                history.append({"step": step, "train_loss": train_loss, "val_loss": validate()})
                window = []
                metadata.update(
                    steps=step,
                    train_loss=train_loss,
                    val_loss=history[-1]["val_loss"],
                    history=history,
                    batch=batch,
                    lr=base_lr,
                )
                saved_at = save_checkpoint(
                    out, net=net, metadata=metadata, optimizer=optimizer, step=step, rng=rng
                )
                if progress:
                    bar.console.print(
                        f"step {step}/{steps}: train loss {train_loss:.5f}, "
                        f"val loss {history[-1]['val_loss']:.5f} -> {out}"
                    )
    if saved_at is None:  # resumed at or past `steps`: nothing to train, keep the file
        save_checkpoint(out, net=net, metadata=metadata, optimizer=optimizer, step=step, rng=rng)
    last = history[-1]
    return TrainResult(out, step, last["train_loss"], last["val_loss"], history)


def train_operator_command(
    prior: str,
    deg: str,
    data: str | None = None,
    steps: int = 2000,
    batch: int = 16,
    lr: float | None = None,
    out: Path | None = None,
    variant: str = "preserve",
    sigma_max: float | None = None,
    loss: str = "l1",
    seed: int = 0,
    val_fraction: float = 0.05,
    checkpoint_every: int = 500,
    resume: Path | None = None,
    device: str = "cpu",
    widths: str | None = None,
) -> Path:
    """`bench train-operator`: load the prior (empty prompt) and data, train, return the file."""
    channel_widths = parse_widths(widths)
    model = load_prior(prior, device=device)
    op = build_degradation(deg, model.image_size)
    if data is not None:
        from bench.runner import image_source  # folders, hf: data sets, saved data sets

        source: TrainingData = ImageSourceData(image_source(model, data), val_fraction)
    elif hasattr(model, "sample_images"):
        source = PriorSampleData(model)
    elif hasattr(model, "training_source"):
        source = ImageSourceData(model.training_source(), val_fraction)
    else:
        raise ValueError(f"prior {prior!r} cannot sample its own training images; pass --data DIR")
    result = train_operator(
        model,
        op,
        source,
        out=out,
        variant=variant,
        steps=steps,
        batch=batch,
        lr=lr,
        sigma_max=sigma_max,
        loss=loss,
        seed=seed,
        checkpoint_every=checkpoint_every,
        resume=resume,
        prior_id=prior,
        widths=channel_widths,
    )
    Console(stderr=True).print(
        f"latent operator ({variant}) for {prior} / {canonical_spec(op)}: step {result.step}, "
        f"train loss {result.train_loss}, val loss {result.val_loss:.5f} -> {result.path}"
    )
    return result.path


@torch.no_grad()
def relative_error(
    h: Callable[[torch.Tensor, float], torch.Tensor],
    reference: Callable[[torch.Tensor, float], torch.Tensor],
    z: torch.Tensor,
    sigma_pm1: float,
) -> float:
    """Mean over latents of ||h(z) - ref(z)|| / ||ref(z)|| (the oracle recovery figure)."""
    want = reference(z, sigma_pm1).double()
    got = h(z, sigma_pm1).double()
    return float(((got - want).flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)).mean())
