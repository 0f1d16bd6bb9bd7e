"""Hugging Face `datasets` as an image source: `--data hf:NAME[:SPLIT][:COLUMN]` or a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.data import ImageLoadError, ImageSource, resize_center_crop, to_rgb_array

PREFIX = "hf:"
DEFAULT_SPLIT = "train"
SAVED_MARKERS = (("dataset_info.json", "state.json"), ("dataset_dict.json",))


@dataclass(frozen=True)
class HfSpec:
    """What `--data hf:NAME[:SPLIT][:COLUMN]` names; split/column None = the default."""

    name: str
    split: str | None = None
    column: str | None = None


def is_saved_dataset(path: str | Path) -> bool:
    """True for a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    folder = Path(path).expanduser()
    return folder.is_dir() and any(all((folder / m).is_file() for m in ms) for ms in SAVED_MARKERS)


def is_hf_data(data: str) -> bool:
    """True when --data names a `datasets` source (the hf: prefix or a saved folder)."""
    return data.startswith(PREFIX) or is_saved_dataset(data)


def parse_hf_spec(data: str) -> HfSpec:
    """'hf:NAME[:SPLIT][:COLUMN]' (empty parts = default) or a saved folder -> HfSpec."""
    if not data.startswith(PREFIX):
        return HfSpec(data)
    parts = data[len(PREFIX) :].split(":")
    if not parts[0] or len(parts) > 3:
        raise ValueError(f"--data {data!r}: expected hf:NAME[:SPLIT][:COLUMN]")
    parts += [""] * (3 - len(parts))
    return HfSpec(parts[0], parts[1] or None, parts[2] or None)


def _not_found(spec: HfSpec, err: Exception) -> FileNotFoundError:
    """The error naming the data set, where it was looked for and how to get it."""
    import datasets
    from huggingface_hub import constants as hf_constants

    split = spec.split or DEFAULT_SPLIT
    reason = (str(err).splitlines() or [type(err).__name__])[0]
    offline = " (offline: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE is set)" * bool(
        datasets.config.HF_DATASETS_OFFLINE
    )
    return FileNotFoundError(
        f"--data hf:{spec.name}: data set {spec.name!r} split {split!r} not found{offline}.\n"
        f"Searched:\n  - the datasets cache {datasets.config.HF_DATASETS_CACHE}\n"
        f"  - the hub cache {hf_constants.HF_HUB_CACHE}\n"
        f"  - a local folder {Path(spec.name).expanduser()}\n"
        f"Loader error: {reason}\n"
        "On a machine with network access, save it with:\n"
        f'  python -c "import datasets; datasets.load_dataset({spec.name!r}, split={split!r})'
        f".save_to_disk('DIR')\"\n"
        "then copy DIR here and pass --data DIR (or hf:DIR:SPLIT:COLUMN)."
    )


def load_hf_dataset(spec: HfSpec):
    """The `datasets.Dataset` of spec: a saved folder (either kind) or a hub / cached data set."""
    import datasets

    folder = Path(spec.name).expanduser()
    if is_saved_dataset(folder):
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            splits = list(loaded)
            split = spec.split or (DEFAULT_SPLIT if DEFAULT_SPLIT in splits else None)
            if split is None and len(splits) == 1:
                split = splits[0]
            if split not in splits:
                raise ValueError(
                    f"--data {spec.name}: choose a split with hf:{spec.name}:SPLIT; "
                    f"valid: {', '.join(splits)}"
                )
            return loaded[split]
        return loaded
    try:
        return datasets.load_dataset(spec.name, split=spec.split or DEFAULT_SPLIT)
    except Exception as e:  # datasets raises many types (connection, not found, offline)
        raise _not_found(spec, e) from e


def image_column(dataset, spec: HfSpec) -> str:
    """spec.column, else the first column whose feature is `datasets.Image`."""
    import datasets

    columns = list(dataset.features)
    if spec.column is not None:
        if spec.column not in columns:
            raise ValueError(
                f"--data hf:{spec.name}: no column {spec.column!r}; valid: {', '.join(columns)}"
            )
        return spec.column
    images = [c for c, f in dataset.features.items() if isinstance(f, datasets.Image)]
    if not images:
        raise ValueError(
            f"--data hf:{spec.name}: no image column; name one with hf:NAME:SPLIT:COLUMN "
            f"(columns: {', '.join(columns)})"
        )
    return images[0]


def hf_images(data: str, size: int) -> ImageSource:
    """Rows of a `datasets` split as images; id = the row index, zero-padded (FFHQ's 00123)."""
    from PIL import Image

    spec = parse_hf_spec(data)
    dataset = load_hf_dataset(spec)
    column = image_column(dataset, spec)
    rows = dataset.select_columns([column])
    width = len(str(max(len(rows) - 1, 0)))
    ids = [f"{i:0{width}d}" for i in range(len(rows))]

    def load(image_id: str) -> torch.Tensor:
        try:
            img = rows[int(image_id)][column]
            if not isinstance(img, Image.Image):
                raise TypeError(f"column {column!r} holds {type(img).__name__}, not images")
            a = to_rgb_array(img)
        except Exception as e:  # a corrupt row is one error record, not a crashed sweep
            raise ImageLoadError(f"cannot read image {image_id} of {data}: {e}") from e
        return resize_center_crop(a, size) * 2 - 1

    name = Path(spec.name).name if is_saved_dataset(spec.name) else spec.name
    return ImageSource(f"{name}:{spec.split or DEFAULT_SPLIT}", ids, load)
