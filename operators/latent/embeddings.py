"""Noise-level and position embeddings of the latent operators (silo.md §1.2 step 3, §2.3)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.models.embeddings import get_timestep_embedding

SIGMA_SCALE = 0.1  # sigma_pm1 / 0.1 maps the operators' noise range onto [0, 1] (silo.md §8)
SIGMA_TIMESTEP = 999.0  # ... and x 999 onto the UNet's timestep axis (silo.md §1.2 step 3)


def as_sigma(sigma: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """sigma_pm1 as a float32 (B,) tensor: one float for the batch or one value per sample."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=device).reshape(-1)
    return s.expand(batch) if s.numel() == 1 else s


def noise_embedding(sigma: torch.Tensor, dim: int = 128, max_noise: float = 0.1) -> torch.Tensor:
    """Fixed (B, dim) embedding of n = sigma / max_noise: [sin(n f_k), cos(n f_k)] interleaved.

    f_k = exp(-ln(10^4) k / (dim / 2 - 1)), k = 0 .. dim / 2 - 1 (silo.md §2.3).
    """
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=sigma.device)
    freqs = torch.exp(-math.log(1e4) * k / (half - 1))
    angles = (sigma.float() / max_noise)[:, None] * freqs[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(sigma.shape[0], dim)


def position_embedding(
    height: int, width: int, channels: int = 8, device: torch.device | None = None
) -> torch.Tensor:
    """Fixed (channels, h, w) map: per axis sin/cos of coordinates in [0, 1] at 1 and 10^4.

    The first half of the channels encodes y, the second x (silo.md §2.3).
    """
    per_axis = channels // 2
    freqs = torch.logspace(0.0, 4.0, per_axis // 2, dtype=torch.float32, device=device)

    def axis(n: int) -> torch.Tensor:
        c = torch.linspace(0.0, 1.0, n, dtype=torch.float32, device=device)
        a = c[None, :] * freqs[:, None]
        return torch.stack([a.sin(), a.cos()], dim=1).reshape(per_axis, n)

    ys = axis(height)[:, :, None].expand(per_axis, height, width)
    xs = axis(width)[:, None, :].expand(per_axis, height, width)
    return torch.cat([ys, xs])


@dataclass
class SigmaEmbedding:
    """e_sigma: sigma_pm1 (B,) -> (B, dim), the timestep embedding of (sigma / 0.1) * 999.

    kind "unet": the diffusion UNet's own time_proj + time_embedding MLP, as the official code
    does (silo.md §1.2 step 3); the UNet stays outside the operator's weights. kind
    "sinusoidal": the same fixed projection without the MLP, for priors without a UNet.
    """

    kind: str
    dim: int
    unet: torch.nn.Module | None = None

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        """(B, dim) float32, no gradient (sigma is a constant of the run)."""
        s = sigma.float() / SIGMA_SCALE * SIGMA_TIMESTEP
        with torch.no_grad():
            if self.unet is None:
                return get_timestep_embedding(s, self.dim, flip_sin_to_cos=True)
            dtype = next(self.unet.parameters()).dtype
            emb = self.unet.time_embedding(self.unet.time_proj(s).to(dtype))
        return emb.float()


def unet_sigma_embedding(unet: torch.nn.Module) -> SigmaEmbedding:
    """e_sigma through a diffusers UNet's time MLP (1280-d for SD-1.x)."""
    return SigmaEmbedding("unet", unet.time_embedding.linear_2.out_features, unet)


def sinusoidal_sigma_embedding(dim: int) -> SigmaEmbedding:
    """e_sigma without a UNet: the fixed sinusoidal timestep projection of width dim."""
    return SigmaEmbedding("sinusoidal", dim)
