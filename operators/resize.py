"""Super-resolution: MATLAB-imresize-style antialiased bicubic downsampling (Shocher's resizer)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F

from operators.checks import check_image, check_positive

CUBIC_SUPPORT = 4.0


def cubic(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's bicubic kernel (Keys, a = -0.5), zero for |x| > 2."""
    a = x.abs()
    inner = (1.5 * a**3 - 2.5 * a**2 + 1.0) * (a <= 1)
    outer = (-0.5 * a**3 + 2.5 * a**2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return inner + outer


@lru_cache(maxsize=32)
def downsample_matrix(in_length: int, factor: int) -> torch.Tensor:
    """(in // factor, in) float64 weights of Shocher's antialiased cubic resizer along one axis.

    With scale = 1 / factor, output pixel x (1-based) sits at input coordinate
    u = x / scale + 0.5 (1 - 1 / scale); its taps j (1-based) get scale * cubic(scale (u - j)),
    normalised to sum 1, and taps outside [1, in] are mirrored back as MATLAB does
    (d c b a | a b c d | d c b a), accumulating onto the pixel they land on.
    """
    if in_length % factor:
        raise ValueError(f"length {in_length} is not divisible by factor {factor}")
    scale = 1.0 / factor
    width = CUBIC_SUPPORT / scale
    out = torch.arange(1, in_length // factor + 1, dtype=torch.float64)
    u = out / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2)
    taps = left[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)[None, :]
    weights = scale * cubic(scale * (u[:, None] - taps))
    weights = weights / weights.sum(dim=1, keepdim=True)
    period = (taps.long() - 1) % (2 * in_length)
    source = torch.where(period < in_length, period, 2 * in_length - 1 - period)
    matrix = torch.zeros(len(out), in_length, dtype=torch.float64)
    return matrix.scatter_add_(1, source, weights)


@dataclass
class BicubicDownsample:
    """SR x factor: y = M x M^T, Shocher's MATLAB-style antialiased bicubic resizer (DPS/SILO)."""

    image_size: int
    factor: int
    is_linear: bool = field(default=True, init=False)
    matrix: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_positive(self.factor, "factor", self.name)
        if self.image_size % self.factor:
            raise ValueError(
                f"{self.name}: image_size {self.image_size} must be divisible by factor "
                f"{self.factor}"
            )
        self.matrix = downsample_matrix(self.image_size, self.factor)

    @classmethod
    def build(cls, image_size: int, factor: int = 4) -> BicubicDownsample:
        """The operator at image_size; sr4 and sr8 fix factor 4 and 8."""
        return cls(image_size=image_size, factor=factor)

    @property
    def name(self) -> str:
        """sr<factor>, so sr4:factor=8 and sr8 are the same operator under the same name."""
        return f"sr{self.factor}"

    @property
    def params(self) -> dict:
        """The downsampling factor."""
        return {"factor": self.factor}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """M x M^T per channel: (B, 3, S, S) -> (B, 3, S / factor, S / factor)."""
        check_image(x, self.image_size, self.name)
        m = self.matrix.to(device=x.device, dtype=x.dtype)
        return torch.einsum("ih,bchw,jw->bcij", m, x, m)

    def pseudo_transpose(self, y: torch.Tensor) -> torch.Tensor:
        """Nearest upsampling by factor, as PSLD's code does (not the adjoint or pseudo-inverse)."""
        return F.interpolate(y, scale_factor=self.factor, mode="nearest")

    def upsample_for_encoding(self, y: torch.Tensor) -> torch.Tensor:
        """Bicubic (antialiased) torchvision resize back to image size, as SILO does."""
        import torchvision.transforms.functional as TF  # lazy: torchvision loads torch._dynamo
        from torchvision.transforms import InterpolationMode

        return TF.resize(
            y,
            [self.image_size, self.image_size],
            interpolation=InterpolationMode.BICUBIC,
            antialias=True,
        )

    def seeded(self, generators: Sequence[torch.Generator]) -> BicubicDownsample:
        """Deterministic: returns self."""
        return self
