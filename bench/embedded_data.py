"""The embedded prior's photos: scikit-image and scikit-learn samples, split by whole photo.

Training photos (9): astronaut, camera (grey, replicated to RGB), rocket, motorcycle (left view
of skimage's stereo pair), hubble_deep_field, immunohistochemistry, retina (skimage);
china, flower (sklearn `load_sample_images`). Held out (2, never seen in training): coffee,
chelsea (skimage). All install with the dependencies; none needs the network.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from bench.data import ImageSource

HELDOUT_PHOTOS = ("coffee", "chelsea")
TRAINING_PHOTOS = (
    "astronaut",
    "camera",
    "rocket",
    "motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "china",
    "flower",
)
# Held-out crops: (photo, centre row, centre column as fractions of the photo, side as a
# fraction of its short side), resized to the prior's image size. Ids are "<photo>_<k>".
HELDOUT_CROPS: tuple[tuple[str, float, float, float], ...] = tuple(
    (photo, cy, cx, side)
    for photo in HELDOUT_PHOTOS
    for cy, cx, side in (
        (0.50, 0.50, 1.00),
        (0.50, 0.50, 0.50),
        (0.30, 0.30, 0.50),
        (0.30, 0.70, 0.50),
        (0.70, 0.30, 0.50),
        (0.70, 0.70, 0.50),
        (0.40, 0.45, 0.30),
        (0.60, 0.60, 0.30),
    )
)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    """A loader for one scikit-image sample."""

    def load() -> np.ndarray:
        import skimage.data

        if name == "motorcycle":
            return skimage.data.stereo_motorcycle()[0]
        return getattr(skimage.data, name)()

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    """A loader for one scikit-learn sample image (china.jpg, flower.jpg)."""

    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")

    return load


PHOTO_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    **{n: _skimage(n) for n in (*TRAINING_PHOTOS[:7], *HELDOUT_PHOTOS)},
    "china": _sklearn("china"),
    "flower": _sklearn("flower"),
}


def load_photo(name: str) -> torch.Tensor:
    """One photo as (3, H, W) float32 in [-1, 1]; grey photos are replicated to RGB."""
    a = np.asarray(PHOTO_LOADERS[name](), dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return torch.from_numpy(a[..., :3].copy()).permute(2, 0, 1) * 2 - 1


def embedded_training_photos() -> dict[str, torch.Tensor]:
    """The training photos by name, each (3, H, W) in [-1, 1]."""
    return {name: load_photo(name) for name in TRAINING_PHOTOS}


def crop_resize(photo: torch.Tensor, top: int, left: int, side: int, size: int) -> torch.Tensor:
    """The square photo[:, top:top+side, left:left+side] resized to (3, size, size), antialiased."""
    patch = photo[None, :, top : top + side, left : left + side]
    if side != size:
        patch = F.interpolate(patch, (size, size), mode="bicubic", antialias=True)
    return patch[0].clamp(-1, 1)


def random_crops(
    photos: dict[str, torch.Tensor], count: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` random square crops (side log-uniform in [size, short side]), flipped at random."""
    names = sorted(photos)
    out = torch.empty(count, 3, size, size)
    for i in range(count):
        photo = photos[names[int(torch.randint(len(names), (1,), generator=generator))]]
        h, w = photo.shape[-2:]
        lo, hi = np.log(size), np.log(min(h, w))
        side = int(round(np.exp(lo + (hi - lo) * float(torch.rand(1, generator=generator)))))
        top = int(torch.randint(h - side + 1, (1,), generator=generator))
        left = int(torch.randint(w - side + 1, (1,), generator=generator))
        crop = crop_resize(photo, top, left, side, size)
        if float(torch.rand(1, generator=generator)) < 0.5:
            crop = crop.flip(-1)
        out[i] = crop
    return out


def heldout_crop(photo: torch.Tensor, cy: float, cx: float, side: float, size: int) -> torch.Tensor:
    """The fixed crop (centre fractions, side fraction of the short side) resized to `size`."""
    h, w = photo.shape[-2:]
    s = int(round(side * min(h, w)))
    top = min(max(int(round(cy * h - s / 2)), 0), h - s)
    left = min(max(int(round(cx * w - s / 2)), 0), w - s)
    return crop_resize(photo, top, left, s, size)


def heldout_ids() -> list[str]:
    """The held-out crop ids, "<photo>_<k>" in HELDOUT_CROPS order."""
    counts: dict[str, int] = {}
    ids = []
    for photo, *_ in HELDOUT_CROPS:
        ids.append(f"{photo}_{counts.get(photo, 0)}")
        counts[photo] = counts.get(photo, 0) + 1
    return ids


def embedded_heldout_source(size: int = 64) -> ImageSource:
    """The default data set: fixed crops of the held-out photos, (3, size, size) in [-1, 1]."""
    ids = heldout_ids()
    spec = dict(zip(ids, HELDOUT_CROPS, strict=True))
    cache: dict[str, torch.Tensor] = {}

    def load(image_id: str) -> torch.Tensor:
        if image_id not in spec:
            raise KeyError(f"no held-out crop {image_id!r}; ids are {', '.join(ids)}")
        photo, cy, cx, side = spec[image_id]
        if photo not in cache:
            cache[photo] = load_photo(photo)
        return heldout_crop(cache[photo], cy, cx, side, size)

    return ImageSource(f"embedded-heldout-{size}", ids, load)


def embedded_training_source(size: int = 64, count: int = 512, seed: int = 0) -> ImageSource:
    """Fixed random crops of the training photos (as the prior saw them), ids "train_0000"..."""
    ids = [f"train_{i:04d}" for i in range(count)]
    crops: list[torch.Tensor] = []

    def load(image_id: str) -> torch.Tensor:
        if not crops:
            generator = torch.Generator().manual_seed(seed)
            crops.extend(random_crops(embedded_training_photos(), count, size, generator))
        return crops[ids.index(image_id)]

    return ImageSource(f"embedded-train-{size}", ids, load)
