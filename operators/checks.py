"""Argument checks shared by the operators: images are (B, 3, S, S) at the operator's side S."""

from __future__ import annotations

import math

import torch


def check_image(x: torch.Tensor, image_size: int, op: str) -> None:
    """Raise ValueError unless x has shape (B, 3, image_size, image_size)."""
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (image_size, image_size):
        raise ValueError(
            f"{op}: expected images of shape (B, 3, {image_size}, {image_size}), "
            f"got {tuple(x.shape)}"
        )


def check_positive(value: float, what: str, op: str) -> None:
    """Raise ValueError unless value is finite and > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{op}: {what} must be positive and finite, got {value}")
