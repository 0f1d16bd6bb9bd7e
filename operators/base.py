"""The degradation contract shared by every pixel-space operator A (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Degradation(Protocol):
    """A pixel-space forward model y = A(x) on images in [-1, 1] of shape (B, 3, H, W)."""

    name: str
    is_linear: bool

    @property
    def params(self) -> dict:
        """The resolved parameters (what goes into a cell's key)."""
        ...

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A(x), differentiable; noiseless."""
        ...

    def pseudo_transpose(self, y: torch.Tensor) -> torch.Tensor:
        """PSLD's "A^T" exactly as the official code forms it (baselines.md §4.5)."""
        ...

    def upsample_for_encoding(self, y: torch.Tensor) -> torch.Tensor:
        """Map a measurement to image size before the VAE encodes it (SILO §1.1 step 4)."""
        ...

    def seeded(self, generators: Sequence[torch.Generator]) -> Degradation:
        """A copy whose random parameters (e.g. box positions) are drawn per sample."""
        ...
