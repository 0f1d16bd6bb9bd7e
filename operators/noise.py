"""Measurement noise: y = A(x) + sigma n with per-sample generators (silo.md §1.1 step 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from operators.base import Degradation


def sigma_01_to_pm1(sigma_01: float) -> float:
    """Noise std on [0, 1] -> std on [-1, 1] (x2).

    The CLI states sigma on the [0, 1] pixel scale; the official codes add noise to images on
    [-1, 1], where the same noise has twice the std. SILO's configs say 0.02, which is 0.01 on
    [0, 1] (SILO README).
    """
    return 2.0 * sigma_01


def measure(
    op: Degradation,
    x: torch.Tensor,
    sigma_pm1: float,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """op.forward(x) + sigma_pm1 * n, n ~ N(0, I) drawn for sample i from generators[i] alone.

    Noise is added everywhere (inpainting holes included) and nothing is clipped, as the
    official codes do; n has the shape and dtype of one sample's measurement and is drawn on the
    generator's device, so sample i's noise does not depend on the rest of the batch.
    """
    y = op.forward(x)
    if len(generators) != y.shape[0]:
        raise ValueError(f"measure: {len(generators)} generators for a batch of {y.shape[0]}")
    noise = torch.stack(
        [torch.randn(y.shape[1:], generator=g, dtype=y.dtype, device=g.device) for g in generators]
    )
    return y + sigma_pm1 * noise.to(y.device)
