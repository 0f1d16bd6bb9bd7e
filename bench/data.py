"""Image sources: ground truth drawn from the oracle prior, or a folder of photos (DESIGN.md §7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.priors.base import Prior
from bench.seeding import generator_for

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageLoadError(RuntimeError):
    """An image file that cannot be read or converted; becomes an error record for its cells."""


@dataclass(frozen=True)
class ImageSource:
    """A named set of images addressed by id; `load(id)` gives (3, S, S) in [-1, 1]."""

    name: str
    ids: list[str]
    load: Callable[[str], torch.Tensor]


def prior_samples(prior: Prior, count: int) -> ImageSource:
    """Ground truth x = D(z0), z0 drawn from the prior itself: the oracle's own data set."""
    sample = getattr(prior, "sample_images", None)
    if sample is None:
        raise ValueError(f"prior {prior.name!r} cannot sample ground truth; pass --data FOLDER")

    def load(image_id: str) -> torch.Tensor:
        return sample([generator_for("image", prior.name, image_id)])[0]

    return ImageSource(f"{prior.name}-samples", [f"{i:04d}" for i in range(count)], load)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode (RGBA, LA, P, I;16, I, F, CMYK) -> float RGB array in [0, 1], alpha dropped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / peak, 0, 1)
        return np.repeat(a[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def resize_center_crop(a: np.ndarray, size: int) -> torch.Tensor:
    """Resize the short side to `size` (bicubic, antialiased), centre-crop: (3, size, size)."""
    t = torch.from_numpy(a).permute(2, 0, 1)[None].float()
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    t = torch.nn.functional.interpolate(t, (nh, nw), mode="bicubic", antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return t[0, :, top : top + size, left : left + size].clamp(0, 1)


def folder_images(folder: str | Path, size: int) -> ImageSource:
    """Every image file in `folder` (sorted), id = file name, RGB resized and cropped to `size`."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {folder}: not a folder")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"--data {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")

    def load(image_id: str) -> torch.Tensor:
        path = root / image_id
        try:
            with Image.open(path) as img:
                img.load()
                a = to_rgb_array(img)
        except Exception as e:  # PIL raises many types for corrupt files
            raise ImageLoadError(f"cannot read image {path}: {e}") from e
        return resize_center_crop(a, size) * 2 - 1

    return ImageSource(root.name, [p.name for p in files], load)


def select_ids(ids: list[str], spec: str | None) -> list[str]:
    """`N` (the first N), `a:b` (a slice) or `id1,id2` (names or indices); None = all."""
    if spec is None or spec == "":
        return ids
    if spec.isdigit():
        return ids[: int(spec)]
    if ":" in spec:
        a, b = spec.split(":", 1)
        return ids[int(a) if a else None : int(b) if b else None]
    chosen = []
    for item in spec.split(","):
        item = item.strip()
        if item in ids:
            chosen.append(item)
        elif item.isdigit() and int(item) < len(ids):
            chosen.append(ids[int(item)])
        else:
            raise ValueError(f"image {item!r} not found; the data set has {len(ids)} images")
    return chosen
