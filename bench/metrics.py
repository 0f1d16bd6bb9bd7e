"""Per-image metrics (DESIGN.md §4): never pooled over the batch."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from bench import weights

LPIPS_NETS = ("alex", "vgg")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) / 2.0


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round an image in [-1, 1] to the 8-bit grid a saved PNG holds (SILO scores its PNGs)."""
    return (to_unit(x).clamp(0, 1) * 255).round() / 255 * 2 - 1


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """PSNR on [0, 1] per image, shape (B,): 10 log10(1 / MSE_b)."""
    return peak_signal_noise_ratio(
        to_unit(x_hat).double(),
        to_unit(x).double(),
        data_range=1.0,
        reduction="none",
        dim=(1, 2, 3),
    )


def ssim(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """SSIM on [0, 1] per image, shape (B,): Gaussian window 11, sigma 1.5, data_range 1."""
    return structural_similarity_index_measure(
        to_unit(x_hat).double(), to_unit(x).double(), data_range=1.0, reduction="none"
    )


@lru_cache(maxsize=4)
def _lpips_model(net: str, path: str, device: str) -> LearnedPerceptualImagePatchSimilarity:
    """torchmetrics LPIPS (v0.1 heads, [-1, 1] inputs, per image) built from a local backbone."""
    with weights.torch_hub_serving(Path(path)):
        model = LearnedPerceptualImagePatchSimilarity(
            net_type=net, reduction="none", normalize=False
        )
    return model.to(device)


def lpips_model(
    net: str, device: str | torch.device = "cpu"
) -> LearnedPerceptualImagePatchSimilarity:
    """The LPIPS metric for `net`; WeightsMissing when its backbone file is absent (no download)."""
    path = weights.lpips_backbone(net).require()
    return _lpips_model(net, str(path), str(torch.device(device)))


def lpips(x_hat: torch.Tensor, x: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS per image, shape (B,), inputs in [-1, 1]; WeightsMissing without the backbone."""
    model = lpips_model(net, x.device)
    with torch.no_grad():
        model.update(x_hat.float().clamp(-1, 1), x.float().clamp(-1, 1))
        scores = model.compute().reshape(-1).double()
    model.reset()
    return scores


def residual_rms(op_x_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||A(x_hat) - y|| / sqrt(m) per image, in [-1, 1] units: about sigma_pm1 when consistent."""
    return (op_x_hat - y).flatten(1).double().pow(2).mean(dim=1).sqrt()


def post_ratio(x_hat: torch.Tensor, mean: torch.Tensor, trace: float) -> float:
    """||x_hat - mu_post||^2 / trace(Sigma_post): ~1 for posterior draws, ~0 for the mean."""
    return float(((x_hat.double() - mean.double()) ** 2).sum() / trace)
