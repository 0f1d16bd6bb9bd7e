"""Common random numbers: one torch.Generator per (purpose, image, ...) key, stable across runs."""

from __future__ import annotations

import hashlib

import torch


def seed_from(*key: object) -> int:
    """A 63-bit seed that depends only on the key's values (not on Python's hash salt)."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator_for(*key: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator seeded from the key, e.g. ("measurement", image_id, deg, sigma, seed)."""
    g = torch.Generator(device=device)
    g.manual_seed(seed_from(*key))
    return g


def randn_per_sample(
    shape: tuple[int, ...],
    generators: list[torch.Generator],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Standard normal noise of shape (B, *shape), sample i drawn from generators[i] alone."""
    draws = [torch.randn(shape, generator=g, dtype=dtype, device=g.device) for g in generators]
    return torch.stack(draws).to(device)
