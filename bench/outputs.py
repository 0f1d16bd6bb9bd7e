"""PNG outputs of a cell: reconstruction, measurement, ground truth and the comparison grid."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from bench.metrics import to_unit
from bench.store import temp_path


def safe_name(text: str) -> str:
    """A file-name-safe version of an id (letters, digits, . _ - kept)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def id_file_stem(image_id: str) -> str:
    """A file-name-safe stem unique per id: safe_name, plus a short hash of the id when
    characters were replaced (so the nested ids `a/b` and `a_b` never share a file)."""
    stem = safe_name(image_id)
    if stem == image_id:
        return stem
    return f"{stem}-{hashlib.sha256(image_id.encode()).hexdigest()[:8]}"


def save_png(image: torch.Tensor, path: Path) -> None:
    """Write one (3, H, W) image in [-1, 1] as an 8-bit PNG, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)  # unique: two processes may write the same truth PNG
    try:
        save_image(to_unit(image.detach().float().cpu()).clamp(0, 1), tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def to_image_size(y: torch.Tensor, size: int) -> torch.Tensor:
    """A measurement shown at image size (nearest, so SR pixels stay visible)."""
    if y.shape[-1] == size:
        return y
    return F.interpolate(y[None], size=(size, size), mode="nearest")[0]


def save_cell_images(
    out: Path,
    key: str,
    dataset: str,
    image_id: str,
    *,
    x: torch.Tensor,
    y: torch.Tensor,
    x_hat: torch.Tensor,
    op_x_hat: torch.Tensor,
) -> dict[str, str]:
    """recon, measurement and grid [x, y, x_hat, A(x_hat)] PNGs; the truth once per image."""
    size = x.shape[-1]
    truth = Path("truth") / safe_name(dataset) / f"{id_file_stem(image_id)}.png"
    if not (out / truth).exists():
        save_png(x, out / truth)
    paths = {
        "recon_png": Path("images") / f"{key}.png",
        "measurement_png": Path("images") / f"{key}_y.png",
        "grid_png": Path("grids") / f"{key}.png",
    }
    save_png(x_hat, out / paths["recon_png"])
    y_shown = to_image_size(y, size)
    save_png(y_shown, out / paths["measurement_png"])
    grid = torch.cat([x, y_shown, x_hat, to_image_size(op_x_hat, size)], dim=-1)
    save_png(grid, out / paths["grid_png"])
    return {"truth_png": str(truth), **{k: str(v) for k, v in paths.items()}}
