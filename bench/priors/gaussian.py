"""The analytic oracle: a linear-Gaussian latent model whose posterior is known in closed form.

Latent prior z ~ N(0, Sigma) on (C, h, w) with Sigma = kron(C_channels, K_space) + nugget * I,
a linear decoder D(z) = W z (each latent pixel paints a smooth f x f colour patch, so W is
injective) and its pseudo-inverse encoder E(x) = W^+ x. For this prior the exact epsilon
prediction is known for every t, and for a linear A with Gaussian noise the posterior
p(x | y) is Gaussian (DESIGN.md §3): a solver's output can be scored against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from bench.priors.schedule import SD_SCHEDULER_CONFIG, alphas_cumprod_from_config
from bench.seeding import randn_per_sample
from operators.base import Degradation


@dataclass(frozen=True)
class GaussianPosterior:
    """p(x | y) = N(mean, W Sigma_z|y W^T) for one sample; `trace` is that covariance's trace."""

    mean: torch.Tensor  # (3, H, W)
    trace: float
    z_mean: torch.Tensor  # (d,)
    z_chol: torch.Tensor  # (d, d): Sigma_z|y = z_chol z_chol^T


def _squared_exponential(n: int, length_scale: float) -> torch.Tensor:
    """K[i, j] = exp(-|p_i - p_j|^2 / (2 l^2)) on an n x n pixel grid, row-major."""
    r = torch.arange(n, dtype=torch.float64)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    p = torch.stack([yy.flatten(), xx.flatten()], dim=1)
    return torch.exp(-(torch.cdist(p, p) ** 2) / (2.0 * length_scale**2))


def _decoder_patches(channels: int, factor: int, generator: torch.Generator) -> torch.Tensor:
    """(channels, 3, f, f) smooth patterns: constant, two ramps and a saddle, each in one colour."""
    u = torch.linspace(-1.0, 1.0, factor, dtype=torch.float64)
    vv, uu = torch.meshgrid(u, u, indexing="ij")
    shapes = [torch.ones_like(uu), uu, vv, uu * vv]
    colours = torch.randn(channels, 3, generator=generator, dtype=torch.float64)
    colours = colours / colours.norm(dim=1, keepdim=True)
    return torch.stack(
        [colours[c][:, None, None] * shapes[c % len(shapes)] for c in range(channels)]
    )


class GaussianPrior:
    """Linear-Gaussian latent diffusion oracle with exact eps, encode, decode and posterior."""

    def __init__(
        self,
        image_size: int = 32,
        factor: int = 4,
        channels: int = 4,
        length_scale: float = 1.5,
        nugget: float = 0.05,
        pixel_std: float = 0.2,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by factor {factor}")
        self.name = "gaussian"
        self.image_size = image_size
        self.latent_shape = (channels, image_size // factor, image_size // factor)
        self.device = torch.device("cpu")
        self.dtype = dtype
        self.scheduler_config = dict(SD_SCHEDULER_CONFIG)
        self.alphas_cumprod = alphas_cumprod_from_config(self.scheduler_config)
        g = torch.Generator().manual_seed(seed)
        h = self.latent_shape[1]
        a = torch.randn(channels, channels, generator=g, dtype=torch.float64)
        c_channels = a @ a.T / channels + torch.eye(channels, dtype=torch.float64)
        c_channels = c_channels / c_channels.diagonal().mean()
        k_space = _squared_exponential(h, length_scale)
        d = channels * h * h
        self.sigma_z = torch.kron(c_channels, k_space) * (1 - nugget) + nugget * torch.eye(
            d, dtype=torch.float64
        )
        self.eigvals, self.eigvecs = torch.linalg.eigh(self.sigma_z)
        self.chol_z = torch.linalg.cholesky(self.sigma_z)
        patches = _decoder_patches(channels, factor, g)
        basis = torch.eye(d, dtype=torch.float64).reshape(d, *self.latent_shape)
        w = torch.nn.functional.conv_transpose2d(basis, patches, stride=factor)
        w = w.reshape(d, -1).T  # (n, d): column j is D(e_j)
        pixel_var = (w @ self.sigma_z * w).sum(1).mean()
        self.W = w * (pixel_std / pixel_var.sqrt())
        self.W_pinv = torch.linalg.pinv(self.W)
        self._measurement_matrices: dict[str, torch.Tensor] = {}

    # The Prior contract -------------------------------------------------------------------
    def eps(self, z_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Exact E[eps | z_t] = sqrt(1 - abar) (abar Sigma + (1 - abar) I)^-1 z_t (Tweedie)."""
        abar = self._abar(t, z_t.shape[0]).to(z_t)
        coeff = (1 - abar)[:, None].sqrt() / (
            abar[:, None] * self.eigvals.to(z_t) + 1 - abar[:, None]
        )
        u = self.eigvecs.to(z_t)
        flat = z_t.reshape(z_t.shape[0], -1)
        return (((flat @ u) * coeff) @ u.T).reshape(z_t.shape)

    def encode(
        self,
        x: torch.Tensor,
        sample: bool = True,
        generator: Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """E(x) = W^+ x; the linear encoder is deterministic, so `sample` changes nothing."""
        flat = x.reshape(x.shape[0], -1)
        return (flat @ self.W_pinv.T.to(x)).reshape(x.shape[0], *self.latent_shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """D(z) = W z, images of shape (B, 3, H, W)."""
        flat = z.reshape(z.shape[0], -1)
        s = self.image_size
        return (flat @ self.W.T.to(z)).reshape(z.shape[0], 3, s, s)

    def modules(self) -> dict[str, torch.nn.Module]:
        """No networks: the oracle is closed-form."""
        return {}

    # Oracle extras ------------------------------------------------------------------------
    def sample_latents(self, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """z0 ~ N(0, Sigma), one draw per generator."""
        xi = randn_per_sample((self.sigma_z.shape[0],), list(generators), dtype=torch.float64)
        z = xi @ self.chol_z.T
        return z.reshape(len(generators), *self.latent_shape).to(self.dtype)

    def sample_images(self, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Ground-truth images x = D(z0) drawn from the prior itself."""
        return self.decode(self.sample_latents(generators))

    def measurement_matrix(self, op: Degradation) -> torch.Tensor:
        """G = A W (m, d) for a linear, single-sample op, built by applying A to W's columns.

        Cached by the op's dataclass repr (its parameters, and the box corners of a seeded
        random mask), so a sweep builds each distinct operator's matrix once.
        """
        if not op.is_linear:
            raise ValueError(f"degradation {op.name!r} is not linear: no closed-form posterior")
        key = repr(op)
        if key not in self._measurement_matrices:
            s = self.image_size
            columns = self.W.T.reshape(-1, 3, s, s)
            with torch.no_grad():
                out = torch.cat([op.forward(chunk) for chunk in columns.split(256)])
            if len(self._measurement_matrices) >= 64:
                self._measurement_matrices.clear()
            self._measurement_matrices[key] = out.reshape(out.shape[0], -1).T
        return self._measurement_matrices[key]

    def exact_latent_operator(
        self, op: Degradation
    ) -> Callable[[torch.Tensor, float], torch.Tensor]:
        """H(z) = E(up(A(D(z)))) = E[E(up(y)) | z]: what SILO's network learns, exact here."""

        def h(z0: torch.Tensor, sigma_pm1: float) -> torch.Tensor:
            return self.encode(op.upsample_for_encoding(op.forward(self.decode(z0))))

        return h

    def posterior(self, y: torch.Tensor, op: Degradation, sigma_pm1: float) -> GaussianPosterior:
        """Exact p(z | y) for y = A D(z) + sigma n: precision Sigma^-1 + G^T G / sigma^2."""
        if sigma_pm1 <= 0:
            raise ValueError("the posterior is degenerate for sigma = 0")
        g = self.measurement_matrix(op)
        prior_precision = (self.eigvecs / self.eigvals) @ self.eigvecs.T
        precision = prior_precision + g.T @ g / sigma_pm1**2
        chol_precision = torch.linalg.cholesky(precision)
        rhs = g.T @ y.reshape(-1).to(torch.float64) / sigma_pm1**2
        z_mean = torch.cholesky_solve(rhs[:, None], chol_precision)[:, 0]
        eye = torch.eye(precision.shape[0], dtype=torch.float64)
        # Sigma_z|y = P^-1 = L^-T L^-1 with P = L L^T, so a square root is L^-T.
        z_chol = torch.linalg.solve_triangular(chol_precision, eye, upper=False).T
        s = self.image_size
        mean = (self.W @ z_mean).reshape(3, s, s)
        trace = float(((self.W @ z_chol) ** 2).sum())
        return GaussianPosterior(mean=mean, trace=trace, z_mean=z_mean, z_chol=z_chol)

    def posterior_mean(self, y: torch.Tensor, op: Degradation, sigma_pm1: float) -> torch.Tensor:
        """E[x | y] (3, H, W)."""
        return self.posterior(y, op, sigma_pm1).mean

    def posterior_sample(
        self, y: torch.Tensor, op: Degradation, sigma_pm1: float, generator: torch.Generator
    ) -> torch.Tensor:
        """One exact draw x ~ p(x | y) (3, H, W)."""
        post = self.posterior(y, op, sigma_pm1)
        xi = torch.randn(post.z_mean.shape[0], generator=generator, dtype=torch.float64)
        z = post.z_mean + post.z_chol @ xi
        s = self.image_size
        return (self.W @ z).reshape(3, s, s)

    def _abar(self, t: torch.Tensor | int, batch: int) -> torch.Tensor:
        """abar_t per sample; t = T (PSLD's full-length grid feeds it) maps to T - 1."""
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(batch)
        return self.alphas_cumprod[t.clamp(max=len(self.alphas_cumprod) - 1)]
