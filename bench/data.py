"""Image sources: oracle samples, a (nested) folder of photos, image lists (DESIGN.md §7)."""

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
SHIPPED_LISTS = Path(__file__).resolve().parent / "image_lists"  # `--images @NAME`


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


def folder_files(root: Path) -> dict[str, Path]:
    """Every image file under root, recursively, in sorted order of relative path.

    The id is the relative POSIX path without its extension (FFHQ's `00000/00123.png` is
    `00000/00123`); when two files differ only in extension both keep it, so ids stay unique.
    """
    files = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    stems = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    clashes = {s for s in stems if stems.count(s) > 1}
    return {
        (p.relative_to(root).as_posix() if stem in clashes else stem): p
        for stem, p in zip(stems, files, strict=True)
    }


def load_image_file(path: Path, size: int) -> torch.Tensor:
    """One image file as (3, size, size) in [-1, 1]; an unreadable file is an ImageLoadError."""
    try:
        with Image.open(path) as img:
            img.load()
            a = to_rgb_array(img)
    except Exception as e:  # PIL raises many types for corrupt files
        raise ImageLoadError(f"cannot read image {path}: {e}") from e
    return resize_center_crop(a, size) * 2 - 1


def folder_images(folder: str | Path, size: int) -> ImageSource:
    """Every image under `folder` (recursive, sorted), RGB resized and cropped to `size`."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {folder}: not a folder")
    files = folder_files(root)
    if not files:
        raise FileNotFoundError(f"--data {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")

    def load(image_id: str) -> torch.Tensor:
        if image_id not in files:
            raise ImageLoadError(f"no image {image_id!r} in {root}")
        return load_image_file(files[image_id], size)

    return ImageSource(root.name, list(files), load)


def read_image_list(name: str) -> list[str]:
    """The ids of `@FILE` (one per line, '#' comments) or of a shipped list `@NAME`."""
    path = Path(name).expanduser()
    if not path.is_file():
        path = SHIPPED_LISTS / f"{name}.txt"
    if not path.is_file():
        shipped = sorted(p.stem for p in SHIPPED_LISTS.glob("*.txt"))
        raise FileNotFoundError(
            f"--images @{name}: no such file and no shipped list of that name; "
            f"shipped lists: {', '.join(shipped)}"
        )
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def match_listed(ids: list[str], listed: list[str], where: str) -> list[str]:
    """Listed ids in the data set's spelling: exact, else by last path component when unique
    (a list of FFHQ `00000/00123` ids selects `00123` in a flat folder and vice versa)."""
    by_stem: dict[str, list[str]] = {}
    for image_id in ids:
        by_stem.setdefault(image_id.rsplit("/", 1)[-1], []).append(image_id)
    known, chosen, missing = set(ids), [], []
    for item in listed:
        candidates = by_stem.get(item.rsplit("/", 1)[-1], [])
        if item in known:
            chosen.append(item)
        elif len(candidates) == 1:
            chosen.append(candidates[0])
        else:
            missing.append(item)
    if missing:
        raise ValueError(
            f"--images {where}: {len(missing)} of {len(listed)} ids are not in the data set "
            f"({len(ids)} images), e.g. {', '.join(missing[:5])}"
        )
    return chosen


def select_ids(ids: list[str], spec: str | None) -> list[str]:
    """`N` (the first N), `a:b` (a slice), `id1,id2` (names or indices) or `@list` (a file of ids
    or a shipped list, see `bench list`); None = all."""
    if spec is None or spec == "":
        return ids
    if spec.startswith("@"):
        return match_listed(ids, read_image_list(spec[1:]), spec)
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
