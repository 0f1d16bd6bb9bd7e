"""JPEG compression via kornia's differentiable codec, as SILO does (silo.md §4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from operators.checks import check_image


@dataclass
class DifferentiableJPEG:
    """y = clamp(2 JPEG_q((x + 1) / 2) - 1, -1, 1) with kornia.enhance.jpeg_codec_differentiable.

    kornia pads H and W to multiples of 16 internally (replicating the bottom/right edge) and crops
    back, so any image side works.

    The codec's output depends on kornia's version: kornia 0.9 and the official environment's
    0.7.3 differ by up to 1.9e-4 in value and in gradient at 512 px (figure from issue #11, not
    re-measured here). JPEG numbers are comparable across runs of one kornia version only, so
    every record's `env` carries `kornia`.
    """

    image_size: int
    quality: int
    name: str = field(default="jpeg", init=False)
    is_linear: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ValueError(f"{self.name}: quality must be in 1..100, got {self.quality}")

    @classmethod
    def build(cls, image_size: int, quality: int = 10) -> DifferentiableJPEG:
        """The operator at image_size with SILO's quality 10 by default."""
        return cls(image_size=image_size, quality=quality)

    @property
    def params(self) -> dict:
        """The JPEG quality."""
        return {"quality": self.quality}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The differentiable JPEG round trip of x, on [-1, 1]."""
        from kornia.enhance import jpeg_codec_differentiable  # lazy: kornia is slow to import

        check_image(x, self.image_size, self.name)
        quality = torch.tensor([float(self.quality)], device=x.device, dtype=x.dtype)
        coded = jpeg_codec_differentiable((x + 1.0) / 2.0, quality)
        return (coded * 2.0 - 1.0).clamp(-1.0, 1.0)

    def pseudo_transpose(self, y: torch.Tensor) -> torch.Tensor:
        """Undefined: JPEG is nonlinear, so it has no A^T (PSLD is linear-only)."""
        raise NotImplementedError(
            f"{self.name}: JPEG is nonlinear and has no A^T; PSLD supports linear operators only"
        )

    def upsample_for_encoding(self, y: torch.Tensor) -> torch.Tensor:
        """Identity: the measurement is already at image size."""
        return y

    def seeded(self, generators: Sequence[torch.Generator]) -> DifferentiableJPEG:
        """Deterministic: returns self."""
        return self
