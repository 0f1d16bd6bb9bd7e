"""Data sets the field uses: nested folders, image lists, Hugging Face `datasets` sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.data import ImageLoadError, folder_images, select_ids
from bench.outputs import id_file_stem

runner = CliRunner()


def photo(value: int, size: tuple[int, int] = (12, 10)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8))


@pytest.fixture
def nested(tmp_path: Path) -> Path:
    """FFHQ's layout (00000/00001.png) plus a class folder, a flat file and one corrupt file."""
    root = tmp_path / "nested"
    for rel, value in {
        "01000/01000.png": 10,
        "00000/00001.png": 20,
        "00000/00000.jpg": 30,
        "n01440764/img a.jpeg": 40,
        "top.png": 50,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        photo(value).save(root / rel)
    (root / "00000" / "00002.png").write_bytes(b"not a png at all")
    (root / "notes.txt").write_text("not an image")
    return root


def test_nested_folder_ids_are_sorted_relative_paths_without_extension(nested):
    source = folder_images(nested, 8)
    expected = [
        "00000/00000",
        "00000/00001",
        "00000/00002",
        "01000/01000",
        "n01440764/img a",
        "top",
    ]
    assert source.ids == expected
    # the grey level 30 of 00000/00000.jpg survives resizing: the id reaches the right file
    assert source.load("00000/00000").mean().item() == pytest.approx(30 / 255 * 2 - 1, abs=2e-2)
    with pytest.raises(ImageLoadError, match="00002.png"):
        source.load("00000/00002")


def test_same_stem_keeps_extensions_and_file_stems_are_unique(tmp_path):
    photo(1).save(tmp_path / "a.png")
    photo(2).save(tmp_path / "a.jpg")
    (tmp_path / "a").mkdir()
    photo(3).save(tmp_path / "a" / "b.png")
    photo(4).save(tmp_path / "a_b.png")
    ids = folder_images(tmp_path, 8).ids
    assert ids == ["a.jpg", "a.png", "a/b", "a_b"]
    stems = [id_file_stem(i) for i in ids]
    assert len(set(stems)) == len(stems)
    assert all("/" not in s and " " not in s for s in stems)
    assert id_file_stem("a_b") == "a_b"  # safe ids keep their name


def test_image_lists_file_and_shipped(tmp_path):
    ids = ["00000/00000", "00000/00001", "00000/00002"]
    listing = tmp_path / "split.txt"
    listing.write_text("# my split\n00000/00002\n\n00000/00000  # first\n")
    assert select_ids(ids, f"@{listing}") == ["00000/00002", "00000/00000"]
    flat = ["00000", "00001", "00002", "00003"]  # a flat folder or an hf: split of FFHQ
    shipped = select_ids([f"{i:05d}" for i in range(1000)], "@ffhq-first-1k")
    assert shipped[:2] == ["00000", "00001"] and len(shipped) == 1000
    with pytest.raises(ValueError, match="997 of 1000 ids are not in the data set"):
        select_ids(flat[:3], "@ffhq-first-1k")
    with pytest.raises(FileNotFoundError, match="ffhq-69000-69999"):
        select_ids(ids, "@no-such-list")


def test_shipped_ffhq_lists_follow_the_index_rule():
    from bench.data import SHIPPED_LISTS, read_image_list

    for name, start in (("ffhq-first-1k", 0), ("ffhq-69000-69999", 69000)):
        ids = read_image_list(name)
        assert (SHIPPED_LISTS / f"{name}.txt").is_file()
        assert ids == [f"{(i // 1000) * 1000:05d}/{i:05d}" for i in range(start, start + 1000)]


def test_bad_file_in_a_folder_is_one_error_record(nested, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "run",
            "--prior",
            "gaussian",
            "--solvers",
            "naive",
            "--deg",
            "sr4",
            "--data",
            str(nested),
            "--images",
            "00000/00000,00000/00002,n01440764/img a",
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    from bench.run_guard import EXIT_CELLS_FAILED

    assert result.exit_code == EXIT_CELLS_FAILED, result.output  # the sweep finished, one failed
    rows = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    status = {r["image_id"]: r["status"] for r in rows}
    assert status == {"00000/00000": "ok", "00000/00002": "error", "n01440764/img a": "ok"}
    assert all(r["env"]["kornia"] for r in rows)
    import kornia

    assert rows[0]["env"]["kornia"] == kornia.__version__
    truths = sorted(p.name for p in (out / "truth" / "nested").iterdir())
    assert len(truths) == 2 and all(" " not in t for t in truths)


@pytest.fixture
def saved_dataset(tmp_path: Path) -> Path:
    """A tiny `datasets` DatasetDict with an image and a caption column, saved to disk."""
    datasets = pytest.importorskip("datasets")
    rows = {"caption": ["a", "b", "c"], "image": [photo(v) for v in (10, 120, 240)]}
    features = datasets.Features({"caption": datasets.Value("string"), "image": datasets.Image()})
    train = datasets.Dataset.from_dict(rows, features=features)
    folder = tmp_path / "ffhq-tiny"
    datasets.DatasetDict({"train": train, "test": train.select([2])}).save_to_disk(str(folder))
    return folder


def test_saved_dataset_folder_and_hf_prefix(saved_dataset):
    from bench.priors import load_prior
    from bench.runner import image_source

    prior = load_prior("gaussian")
    source = image_source(prior, str(saved_dataset))
    assert source.ids == ["0", "1", "2"] and source.name == "ffhq-tiny:train"
    size = prior.image_size
    assert source.load("1").shape == (3, size, size)
    assert source.load("1").mean().item() == pytest.approx(120 / 255 * 2 - 1, abs=2e-2)
    test = image_source(prior, f"hf:{saved_dataset}:test:image")
    assert test.ids == ["0"]
    assert test.load("0").mean().item() == pytest.approx(240 / 255 * 2 - 1, abs=2e-2)
    with pytest.raises(ValueError, match="no column 'photo'; valid: caption, image"):
        image_source(prior, f"hf:{saved_dataset}:train:photo")
    with pytest.raises(ValueError, match="valid: train, test"):
        image_source(prior, f"hf:{saved_dataset}:validation")
    bad = image_source(prior, f"hf:{saved_dataset}:train:caption")
    with pytest.raises(ImageLoadError, match="holds str, not images"):
        bad.load("0")


def test_offline_hub_dataset_is_a_clear_error(tmp_path):
    pytest.importorskip("datasets")
    code = (
        "from bench.cli import app; import sys; "
        "sys.argv = ['bench', 'run', '--prior', 'gaussian', '--solvers', 'naive', "
        "'--data', 'hf:someone/no-such-faces:train', '--dry-run']; app()"
    )
    env = {
        **__import__("os").environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "data set 'someone/no-such-faces' split 'train' not found (offline" in message
    assert str(tmp_path / "hf") in message and "save_to_disk" in message
    assert "Traceback" not in done.stderr
