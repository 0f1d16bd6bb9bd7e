"""The noise-conditioned CNN H(z, e_sigma) of SILO (`DegradationModel`, silo.md §2.2)."""

from __future__ import annotations

import torch
from torch import nn

from operators.latent.embeddings import SigmaEmbedding, as_sigma

ENCODER_CHANNELS = (17, 33, 65, 128)
DECODER_CHANNELS = (64, 32, 16)


class ConvNormAct(nn.Sequential):
    """(transposed) conv3x3 stride 1, LayerNorm over [C, h, w] (elementwise affine), ReLU."""

    def __init__(self, cin: int, cout: int, size: tuple[int, int], transposed: bool = False):
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        super().__init__(conv(cin, cout, 3, padding=1), nn.LayerNorm([cout, *size]), nn.ReLU())


class NoiseCNN(nn.Module):
    """Encoder 5->17->33->65->128, decoder 128->64->32->16, sigma-map skip, 16->16->4 (§2.2).

    The sigma path Linear(D->32), LeakyReLU, Linear(32->h*w) makes a 1-channel map that is
    concatenated to the latent and to the encoder output. Generalised from the official code:
    the latent size (h, w) is a constructor argument instead of the hard-wired 64 x 64, which
    the LayerNorm shapes and the sigma map still need; at 64 x 64 with D = 1280 the layout and
    parameter count (3,548,566) are the official ones.
    """

    input_kind = "z0_hat"

    def __init__(
        self,
        sigma_embedding: SigmaEmbedding,
        latent_shape: tuple[int, int, int] = (4, 64, 64),
    ) -> None:
        super().__init__()
        c, h, w = latent_shape
        size = (h, w)
        self.sigma_embedding = sigma_embedding
        self.sigma_map = nn.Sequential(
            nn.Linear(sigma_embedding.dim, 32), nn.LeakyReLU(), nn.Linear(32, h * w)
        )
        enc = (c + 1, *ENCODER_CHANNELS)
        self.encoder = nn.Sequential(
            *(ConvNormAct(a, b, size) for a, b in zip(enc[:-1], enc[1:], strict=True))
        )
        dec = (ENCODER_CHANNELS[-1], *DECODER_CHANNELS)
        self.decoder = nn.Sequential(
            *(ConvNormAct(a, b, size, True) for a, b in zip(dec[:-1], dec[1:], strict=True))
        )
        last = DECODER_CHANNELS[-1]
        self.skip = nn.Sequential(
            nn.Conv2d(ENCODER_CHANNELS[-1] + 1, last, 1), nn.LayerNorm([last, *size]), nn.ReLU()
        )
        self.process = nn.Sequential(
            ConvNormAct(last, last, size), nn.Conv2d(last, c, 3, padding=1)
        )

    def forward(
        self, z: torch.Tensor, sigma: float | torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """w_hat = H(z, e_sigma) for latents z (B, C, h, w) and sigma_pm1 (float or (B,))."""
        if mask is not None:
            raise ValueError("the noise CNN has no mask input (use the readout variant)")
        b, _, h, w = z.shape
        e = self.sigma_embedding(as_sigma(sigma, b, z.device)).to(z.dtype)
        s = self.sigma_map(e).reshape(b, 1, h, w)
        encoded = self.encoder(torch.cat([z, s], dim=1))
        skip = self.skip(torch.cat([encoded, s], dim=1))
        return self.process(self.decoder(encoded) + skip)
