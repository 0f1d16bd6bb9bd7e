"""Box inpainting y = m * x: the centre box and the random-position box (silo.md §4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from operators.checks import check_image, check_positive


def box_mask(image_size: int, size: int, corners: Sequence[tuple[int, int]]) -> torch.Tensor:
    """(B, 1, S, S) float mask, 1 = known, 0 on the size x size box at each (top, left) corner."""
    mask = torch.ones(len(corners), 1, image_size, image_size)
    for i, (top, left) in enumerate(corners):
        mask[i, :, top : top + size, left : left + size] = 0.0
    return mask


def default_margin(image_size: int) -> int:
    """The official 16 px margin at 512, scaled with the image side."""
    return round(16 * image_size / 512)


def _check_box(image_size: int, size: int, op: str) -> None:
    """Raise ValueError unless the box fits strictly inside the image."""
    check_positive(size, "box size", op)
    if size >= image_size:
        raise ValueError(f"{op}: box size {size} must be smaller than image_size {image_size}")


def _apply_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """m * x with the mask moved to x's device and dtype."""
    return mask.to(device=x.device, dtype=x.dtype) * x


@dataclass
class CenterBoxInpaint:
    """Centre-box inpainting: a size x size hole of zeros at the centre (SILO, DPS `box`)."""

    image_size: int
    size: int
    name: str = field(default="inpaint", init=False)
    is_linear: bool = field(default=True, init=False)
    mask: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_box(self.image_size, self.size, self.name)
        corner = (self.image_size - self.size) // 2
        self.mask = box_mask(self.image_size, self.size, [(corner, corner)])

    @classmethod
    def build(cls, image_size: int, size: int | None = None) -> CenterBoxInpaint:
        """The operator at image_size; the box side defaults to image_size // 2 (256 at 512)."""
        return cls(image_size=image_size, size=image_size // 2 if size is None else size)

    @property
    def params(self) -> dict:
        """The resolved box side."""
        return {"size": self.size}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """m * x: the hole becomes 0 (mid-grey in [-1, 1])."""
        check_image(x, self.image_size, self.name)
        return _apply_mask(self.mask, x)

    def pseudo_transpose(self, y: torch.Tensor) -> torch.Tensor:
        """Identity, as PSLD's code does; equals the adjoint diag(m) on the range of A."""
        return y

    def upsample_for_encoding(self, y: torch.Tensor) -> torch.Tensor:
        """Identity: the measurement is already at image size."""
        return y

    def seeded(self, generators: Sequence[torch.Generator]) -> CenterBoxInpaint:
        """Deterministic: returns self."""
        return self


@dataclass
class RandomBoxInpaint:
    """Random-box inpainting: a size x size hole with a uniform top-left corner inside a margin.

    The corner is drawn per sample and per axis (top, then left) as torch.randint(margin,
    image_size - margin - size) from that sample's generator (DPS `mask_generator` box mode,
    margin 16 at 512, so corners in [16, 239] for a 256 box).
    """

    image_size: int
    size: int
    margin: int
    corners: tuple[tuple[int, int], ...] | None = None
    name: str = field(default="inpaint-random", init=False)
    is_linear: bool = field(default=True, init=False)
    mask: torch.Tensor | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_box(self.image_size, self.size, self.name)
        if self.margin < 0:
            raise ValueError(f"{self.name}: margin must be >= 0, got {self.margin}")
        if self.image_size - self.margin - self.size <= self.margin:
            raise ValueError(
                f"{self.name}: no room for a {self.size} px box inside a {self.margin} px margin "
                f"of a {self.image_size} px image"
            )
        last = self.image_size - self.size
        if self.corners is not None and not all(
            0 <= top <= last and 0 <= left <= last for top, left in self.corners
        ):
            raise ValueError(
                f"{self.name}: box corners must lie in [0, {last}], got {self.corners}"
            )
        self.mask = (
            None if self.corners is None else box_mask(self.image_size, self.size, self.corners)
        )

    @classmethod
    def build(
        cls, image_size: int, size: int | None = None, margin: int | None = None
    ) -> RandomBoxInpaint:
        """The unseeded operator; size defaults to image_size // 2, margin to 16 px at 512."""
        return cls(
            image_size=image_size,
            size=image_size // 2 if size is None else size,
            margin=default_margin(image_size) if margin is None else margin,
        )

    @property
    def params(self) -> dict:
        """The resolved box side and margin (the corners come from the seeds)."""
        return {"size": self.size, "margin": self.margin}

    def draw_corner(self, generator: torch.Generator) -> tuple[int, int]:
        """One (top, left) corner, each uniform in [margin, image_size - margin - size)."""
        high = self.image_size - self.margin - self.size
        top, left = torch.randint(
            self.margin, high, (2,), generator=generator, device=generator.device
        ).tolist()
        return top, left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """m_i * x_i with sample i's own box (one box broadcasts over any batch)."""
        if self.mask is None:
            raise RuntimeError(
                f"{self.name}: the box positions are random; call seeded(generators) first "
                "(one torch.Generator per batch element)"
            )
        check_image(x, self.image_size, self.name)
        if self.mask.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"{self.name}: seeded for {self.mask.shape[0]} samples, got a batch of {x.shape[0]}"
            )
        return _apply_mask(self.mask, x)

    def pseudo_transpose(self, y: torch.Tensor) -> torch.Tensor:
        """Identity, as PSLD's code does; equals the adjoint diag(m) on the range of A."""
        return y

    def upsample_for_encoding(self, y: torch.Tensor) -> torch.Tensor:
        """Identity: the measurement is already at image size."""
        return y

    def seeded(self, generators: Sequence[torch.Generator]) -> RandomBoxInpaint:
        """A copy with one box per generator (batch element), drawn from that generator."""
        if len(generators) == 0:
            raise ValueError(f"{self.name}: seeded() needs at least one generator")
        return replace(self, corners=tuple(self.draw_corner(g) for g in generators))
