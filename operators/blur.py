"""Gaussian blur: depthwise conv, scipy filtered-delta kernel, reflection pad (silo.md §4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from operators.checks import check_image, check_positive

TRUNCATE = 4.0


def gaussian_radius(sigma: float) -> int:
    """scipy.ndimage.gaussian_filter's kernel radius: int(truncate * sigma + 0.5), truncate 4."""
    return int(TRUNCATE * sigma + 0.5)


def gaussian_weights_1d(sigma: float) -> torch.Tensor:
    """scipy's normalised 1-D weights exp(-x^2 / (2 sigma^2)) for x in [-r, r], float64."""
    r = gaussian_radius(sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * x**2 / sigma**2)
    return w / w.sum()


def filtered_delta_1d(sigma: float, size: int) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d (mode 'reflect') of a length-`size` delta at size // 2."""
    w = gaussian_weights_1d(sigma)
    r = (len(w) - 1) // 2
    taps = torch.arange(size)[:, None] + torch.arange(-r, r + 1)[None, :]
    period = taps % (2 * size)
    source = torch.where(period < size, period, 2 * size - 1 - period)
    return (w[None, :] * (source == size // 2)).sum(dim=1)


def gaussian_kernel(sigma: float, size: int) -> torch.Tensor:
    """(size, size) float64 kernel = scipy.ndimage.gaussian_filter(centred delta, sigma)."""
    k = filtered_delta_1d(sigma, size)
    return torch.outer(k, k)


def reflect_correlation_matrix(n: int, kernel_1d: torch.Tensor) -> torch.Tensor:
    """(n, n) M with (M v)_i = sum_t k_t v[reflect(i + t - r)]: ReflectionPad(r) then correlate."""
    r = (len(kernel_1d) - 1) // 2
    taps = torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]
    source = taps.abs()
    source = torch.where(source > n - 1, 2 * (n - 1) - source, source)
    m = torch.zeros(n, n, dtype=kernel_1d.dtype)
    m.scatter_add_(1, source, kernel_1d.expand(n, -1).clone())
    return m


@dataclass
class GaussianBlur:
    """Gaussian blur as DPS/SILO do it: a size x size kernel, depthwise, ReflectionPad(size // 2).

    The kernel is exactly zero farther than r = gaussian_radius(sigma) from its centre, so when
    r < size // 2 it is trimmed to (2r + 1)^2 and padded by r: reflection padding by r followed by
    the trimmed kernel reads the same pixels with the same weights as padding by size // 2 with
    the full kernel, so the outputs are identical (up to float summation order) and images down
    to r + 1 px work.
    """

    image_size: int
    sigma: float
    size: int
    name: str = field(default="blur", init=False)
    is_linear: bool = field(default=True, init=False)
    kernel: torch.Tensor = field(init=False, repr=False, compare=False)
    matrix: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_positive(self.sigma, "sigma", self.name)
        check_positive(self.size, "kernel size", self.name)
        if self.size % 2 == 0:
            raise ValueError(f"{self.name}: kernel size must be odd, got {self.size}")
        half = min(gaussian_radius(self.sigma), self.size // 2)
        if half >= self.image_size:
            raise ValueError(
                f"{self.name}: reflection padding by {half} px needs images larger than {half} "
                f"px, got image_size {self.image_size}"
            )
        centre = self.size // 2
        kernel_1d = filtered_delta_1d(self.sigma, self.size)[centre - half : centre + half + 1]
        self.kernel = torch.outer(kernel_1d, kernel_1d)
        self.matrix = reflect_correlation_matrix(self.image_size, kernel_1d)

    @classmethod
    def build(cls, image_size: int, sigma: float = 3.0, size: int = 61) -> GaussianBlur:
        """The operator at image_size with the official sigma 3, 61 x 61 kernel by default."""
        return cls(image_size=image_size, sigma=float(sigma), size=size)

    @property
    def params(self) -> dict:
        """The Gaussian's sigma and the nominal kernel size."""
        return {"sigma": self.sigma, "size": self.size}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise correlation of each RGB channel with the kernel after reflection padding.

        The kernel is the outer product k k^T of scipy's 1-D filtered delta and reflection
        padding is linear, so the whole operator is M x M^T per channel with M the (S, S)
        matrix of "pad by reflection, then correlate with k": the same sums regrouped, and
        two small matmuls instead of a k x k depthwise conv (very slow in float64 on CPU).
        """
        check_image(x, self.image_size, self.name)
        m = self.matrix.to(device=x.device, dtype=x.dtype)
        return torch.einsum("hi,bcij,wj->bchw", m, x, m)

    def pseudo_transpose(self, y: torch.Tensor) -> torch.Tensor:
        """Identity, as PSLD's code does (not the adjoint, which would blur again)."""
        return y

    def upsample_for_encoding(self, y: torch.Tensor) -> torch.Tensor:
        """Identity: the measurement is already at image size."""
        return y

    def seeded(self, generators: Sequence[torch.Generator]) -> GaussianBlur:
        """Deterministic: returns self."""
        return self
