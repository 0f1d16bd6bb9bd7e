"""Report test helpers: fabricated run dirs (records with known values, real PNGs), offline."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from bench import weights

SIZE = 32


def go_offline(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No pretrained file anywhere: an empty TORCH_HOME, no weights folder, no clean-fid file."""
    monkeypatch.setenv("TORCH_HOME", str(home / "torch_home"))
    monkeypatch.delenv(weights.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights, "CLEANFID_DIR", home / "cleanfid")


def truth_image(image_id: str, size: int = SIZE) -> np.ndarray:
    """A deterministic smooth-plus-texture uint8 (H, W, 3) image for an id."""
    rng = np.random.default_rng(zlib.crc32(image_id.encode()))
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + i) * np.cos(4 * yy - i) for i in range(3)], axis=-1)
    image = 127.5 + 80 * base + rng.normal(0, 15, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def noisy(image: np.ndarray, std: float, seed: int) -> np.ndarray:
    """`image` plus Gaussian noise of `std` grey levels, rounded to uint8."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(image + rng.normal(0, std, image.shape)), 0, 255).astype(np.uint8)


def psnr_01(x_hat: np.ndarray, x: np.ndarray) -> float:
    """PSNR on [0, 1] of two uint8 images, computed directly: 10 log10(1 / MSE)."""
    mse = np.mean((x_hat / 255.0 - x / 255.0) ** 2)
    return float(10 * np.log10(1.0 / mse))


def write_png(path: Path, image: np.ndarray) -> None:
    """Save a uint8 (H, W, 3) array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def fabricate_run(out: Path, rows: list[dict]) -> Path:
    """records/<key>.json per row (defaults filled in); ok rows with `recon` also get PNGs.

    A row may carry `recon` (uint8 array) for its reconstruction; the truth PNG is
    truth_image(image_id) and the measurement a blocky copy of it. `recon=None` means no PNGs.
    """
    for i, row in enumerate(rows):
        row = dict(row)
        recon = row.pop("recon", None)
        label = row.get("solver_label", row.get("solver", "naive"))
        record = {
            "key": f"key{i:04d}",
            "prior": "gaussian",
            "dataset": "d",
            "image_id": "0000",
            "degradation": "sr4:factor=4",
            "sigma_01": 0.01,
            "sigma_pm1": 0.02,
            "solver": label.split("[")[0],
            "solver_label": label,
            "hparams": "{}",
            "seed": 0,
            "status": "ok",
            "error": None,
            "runtime_s": 1.0,
            "env": {"device": "cpu"},
            **row,
        }
        if record["status"] != "ok":
            record["error"] = record["error"] or f"{record['status']} at step 3"
        elif recon is not None:
            truth = Path("truth") / record["dataset"] / f"{record['image_id']}.png"
            write_png(out / truth, truth_image(record["image_id"]))
            blocky = truth_image(record["image_id"])[::4, ::4].repeat(4, 0).repeat(4, 1)
            write_png(out / "images" / f"{record['key']}_y.png", blocky)
            write_png(out / "images" / f"{record['key']}.png", recon)
            record |= {
                "truth_png": str(truth),
                "recon_png": f"images/{record['key']}.png",
                "measurement_png": f"images/{record['key']}_y.png",
            }
        path = out / "records" / f"{record['key']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return out


def fake_alexnet(path: Path) -> dict[str, torch.Tensor]:
    """A RANDOM AlexNet state_dict at `path` (plumbing only): features random, the classifier
    (unused by LPIPS) as stride-0 zeros so the file stays small."""
    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    state = {
        k: v if k.startswith("features") else torch.zeros(1).expand(v.shape)
        for k, v in state.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state
