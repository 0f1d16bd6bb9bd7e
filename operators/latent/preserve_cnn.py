"""The UNet-independent "preserve" CNN H(z, sigma) of SILO (silo.md §2.3), the default variant."""

from __future__ import annotations

import torch
from torch import nn

from operators.latent.embeddings import as_sigma, noise_embedding, position_embedding


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(8, C) groups (silo.md §2.3)."""
    return nn.GroupNorm(min(8, channels), channels)


class NoiseConvBlock(nn.Module):
    """conv3, GN, SiLU, + Linear(noise_emb) bias, conv3, GN, + skip, SiLU (silo.md §2.3 NCB)."""

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm1 = group_norm(out_channels)
        self.noise = nn.Linear(embed_dim, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """One residual block at unchanged resolution, biased per channel by the noise level."""
        h = self.act(self.norm1(self.conv1(x))) + self.noise(emb)[:, :, None, None]
        h = self.norm2(self.conv2(h))
        return self.act(h + self.skip(x))


class PreserveCNN(nn.Module):
    """out = (1 - g) main(z) + g SiLU(conv1x1(z)) + s z, g = sigmoid(Linear(noise_emb)) (§2.3).

    All layers run at the latent's full resolution, so any (C, h, w) works; fixed sinusoidal
    noise (sigma / max_noise) and 2-D position embeddings, a learnable skip scale s (init 1),
    PyTorch default initialisation (the official `_init_weights` is never called). Widths
    48 / 128 are the reference's; narrower ones (fewer parameters to ship) are options.
    """

    input_kind = "z0_hat"

    def __init__(
        self,
        latent_channels: int = 4,
        base_channels: int = 48,
        mid_channels: int = 128,
        noise_embed_dim: int = 128,
        pos_embed_channels: int = 8,
        max_noise: float = 0.1,
    ) -> None:
        super().__init__()
        c, m, e = base_channels, mid_channels, noise_embed_dim
        self.noise_embed_dim, self.max_noise = e, max_noise
        self.pos_embed_channels = pos_embed_channels
        self.color_proj = nn.Sequential(nn.Conv2d(latent_channels, latent_channels, 1), nn.SiLU())
        self.conv_in = nn.Conv2d(latent_channels + pos_embed_channels, c, 3, padding=1)
        self.down = nn.ModuleList(
            [NoiseConvBlock(c, c, e), NoiseConvBlock(c, 2 * c, e), NoiseConvBlock(2 * c, m, e)]
        )
        self.middle = NoiseConvBlock(m, m, e)
        up = ((m, 2 * c), (3 * c, c), (2 * c, c))  # the last two take a skip (c) each
        self.up = nn.ModuleList([NoiseConvBlock(a, b, e) for a, b in up])
        self.conv_out = nn.Conv2d(c, latent_channels, 3, padding=1)
        self.gate = nn.Linear(e, 1)
        self.skip_scale = nn.Parameter(torch.ones(()))

    def forward(
        self, z: torch.Tensor, sigma: float | torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """w_hat = H(z, sigma) for latents z (B, C, h, w) and sigma_pm1 (float or (B,))."""
        if mask is not None:
            raise ValueError("the preserve CNN has no mask input (use the readout variant)")
        b, _, h, w = z.shape
        emb = noise_embedding(as_sigma(sigma, b, z.device), self.noise_embed_dim, self.max_noise)
        pos = position_embedding(h, w, self.pos_embed_channels, z.device).to(z.dtype)
        h0 = self.conv_in(torch.cat([z, pos.expand(b, -1, -1, -1)], dim=1))
        h1 = self.down[0](h0, emb)
        x = self.middle(self.down[2](self.down[1](h1, emb), emb), emb)
        x = self.up[0](x, emb)
        x = self.up[1](torch.cat([x, h1], dim=1), emb)
        x = self.up[2](torch.cat([x, h0], dim=1), emb)
        g = torch.sigmoid(self.gate(emb))[:, :, None, None]
        return (1 - g) * self.conv_out(x) + g * self.color_proj(z) + self.skip_scale * z
