"""Per-image metrics (DESIGN.md §4): never pooled over the batch."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio


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


def residual_rms(op_x_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||A(x_hat) - y|| / sqrt(m) per image, in [-1, 1] units: about sigma_pm1 when consistent."""
    return (op_x_hat - y).flatten(1).double().pow(2).mean(dim=1).sqrt()


def post_ratio(x_hat: torch.Tensor, mean: torch.Tensor, trace: float) -> float:
    """||x_hat - mu_post||^2 / trace(Sigma_post): ~1 for posterior draws, ~0 for the mean."""
    return float(((x_hat.double() - mean.double()) ** 2).sum() / trace)
