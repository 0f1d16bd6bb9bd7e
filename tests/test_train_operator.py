"""`bench train-operator`: recovery on the oracle, tiny-SD runs, checkpoints, resume, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import folder_images
from bench.priors.gaussian import GaussianPrior
from bench.seeding import generator_for
from bench.train_operator import (
    TRAIN_OPERATOR_HELP,
    ImageSourceData,
    PriorSampleData,
    parse_widths,
    relative_error,
    train_operator,
    train_operator_command,
)
from operators import build_degradation, measure
from operators.latent import (
    LearnedLatentOperator,
    build_network,
    export_for_shipping,
    find_operator,
    load_operator,
    network_architecture,
    read_checkpoint,
)
from solvers.silo import silo


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Eight smooth random RGB images of odd sizes (resized and cropped on load)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(8):
        small = rng.uniform(0, 255, (3, 4, 3)).astype(np.uint8)
        Image.fromarray(small).resize((20 + i, 18), Image.BICUBIC).save(folder / f"{i}.png")
    return folder


def held_out_error(h, prior, op, n: int = 32) -> float:
    z = prior.sample_latents([generator_for("heldout", i) for i in range(n)])
    return relative_error(h, prior.exact_latent_operator(op), z, 0.02)


def test_training_on_the_oracle_cuts_the_error_to_the_exact_map(tmp_path):
    prior = GaussianPrior(image_size=16, factor=4)
    op = build_degradation("sr4", 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the initialisation train_operator makes with seed 0
        untrained = build_network(network_architecture("preserve", prior, op), prior)
    before = held_out_error(LearnedLatentOperator(untrained), prior, op)
    result = train_operator(
        prior,
        op,
        PriorSampleData(prior, 8),
        out=tmp_path / "h.pt",
        steps=120,
        batch=8,
        lr=1e-3,
        checkpoint_every=0,
        progress=False,
    )
    after = held_out_error(load_operator(result.path, prior, op), prior, op)
    assert after < 0.3 * before


@pytest.mark.slow
def test_oracle_recovery_within_two_percent(tmp_path):
    """The issue's bar on the default 32 px oracle (about 2 CPU-minutes; see benchmarks/)."""
    prior = GaussianPrior()
    op = build_degradation("sr4", prior.image_size)
    result = train_operator(
        prior,
        op,
        PriorSampleData(prior, 16),
        out=tmp_path / "h.pt",
        steps=3000,
        batch=4,
        lr=3e-3,
        lr_schedule="cosine",
        checkpoint_every=0,
        progress=False,
    )
    assert held_out_error(load_operator(result.path, prior, op), prior, op, 256) < 0.02


def tiny_run(prior, photos: Path, out: Path, **kw):
    """A few steps of the default variant on the tiny SD prior."""
    data = ImageSourceData(folder_images(photos, prior.image_size), val_fraction=0.25)
    args = {"steps": 4, "batch": 2, "lr": 1e-3, "checkpoint_every": 2, "progress": False}
    return train_operator(prior, build_degradation("sr4", 16), data, out=out, **{**args, **kw})


def test_tiny_sd_validation_loss_drops_and_the_checkpoint_round_trips(tiny_prior, photos, tmp_path):
    result = tiny_run(tiny_prior, photos, tmp_path / "h.pt", steps=30, checkpoint_every=15)
    assert [h["step"] for h in result.history] == [0, 15, 30]
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    saved = read_checkpoint(result.path)
    meta = saved["metadata"]
    assert meta["prior_id"] == tiny_prior.name and meta["prior_folder_name"] == "tiny_sd0"
    assert (meta["degradation"], meta["degradation_params"]) == ("sr4:factor=4", {"factor": 4})
    assert meta["sigma_range"] == [0.0, 0.04] and meta["variant"] == "preserve"
    assert meta["steps"] == saved["step"] == 30
    assert meta["val_loss"] == result.val_loss and meta["train_loss"] == result.train_loss
    assert meta["code_version"] and meta["data"]["n_val"] == 2 and meta["data"]["augment"]
    h = load_operator(result.path, tiny_prior, build_degradation("sr4", 16))
    z = torch.randn(2, *tiny_prior.latent_shape)
    net = h.net
    net.load_state_dict(saved["state_dict"])
    assert torch.equal(h(z, 0.02), net(z, 0.02))


def test_same_seed_same_weights_and_resume_continues_exactly(tiny_prior, photos, tmp_path):
    straight = tiny_run(tiny_prior, photos, tmp_path / "a.pt")
    again = tiny_run(tiny_prior, photos, tmp_path / "b.pt")
    other = tiny_run(tiny_prior, photos, tmp_path / "c.pt", seed=1)
    half = tiny_run(tiny_prior, photos, tmp_path / "d.pt", steps=2)
    resumed = tiny_run(tiny_prior, photos, tmp_path / "e.pt", resume=half.path)
    weights = {
        k: read_checkpoint(r.path)["state_dict"]
        for k, r in {"a": straight, "b": again, "c": other, "e": resumed}.items()
    }
    for name, w in weights["a"].items():
        assert torch.equal(w, weights["b"][name])
        assert torch.equal(w, weights["e"][name])
    assert any(not torch.equal(w, weights["c"][n]) for n, w in weights["a"].items())
    assert resumed.step == 4 and read_checkpoint(resumed.path)["step"] == 4
    assert [h["step"] for h in resumed.history] == [0, 2, 4]
    done = tiny_run(tiny_prior, photos, tmp_path / "g.pt", resume=resumed.path)  # nothing left
    assert done.step == 4 and read_checkpoint(done.path)["metadata"]["val_loss"] == resumed.val_loss
    with pytest.raises(ValueError, match=r"cannot resume[\s\S]*variant: checkpoint 'preserve'"):
        tiny_run(tiny_prior, photos, tmp_path / "f.pt", resume=half.path, variant="noise-cnn")


def test_augmentations_are_seeded_and_validation_is_held_out(tiny_prior, photos):
    data = ImageSourceData(folder_images(photos, 16), val_fraction=0.25)
    assert data.val_ids == ["0", "1"] and not set(data.val_ids) & set(data.train_ids)
    assert torch.equal(data.batch(7, 3), data.batch(7, 3))
    plain = ImageSourceData(folder_images(photos, 16), val_fraction=0.25, augment=False)
    assert not torch.equal(data.batch(7, 3), plain.batch(7, 3))
    assert data.batch(7, 3).abs().max() <= 1


def test_readout_with_the_mask_trains_and_drives_silo(tiny_prior, photos, tmp_path):
    op = build_degradation("inpaint-random", 16)
    data = ImageSourceData(folder_images(photos, 16), val_fraction=0.25)
    result = train_operator(
        tiny_prior,
        op,
        data,
        out=tmp_path / "r.pt",
        variant="readout",
        steps=2,
        batch=2,
        checkpoint_every=0,
        progress=False,
    )
    meta = read_checkpoint(result.path)["metadata"]
    assert meta["sigma_range"] == [0.0, 0.1] and meta["architecture"]["cond_mask"]
    seeded = op.seeded([torch.Generator().manual_seed(0)])
    y = measure(seeded, torch.zeros(1, 3, 16, 16), 0.02, [torch.Generator().manual_seed(1)])
    h = load_operator(result.path, tiny_prior, op)
    x_hat = silo(
        tiny_prior,
        seeded,
        y,
        generator=[torch.Generator().manual_seed(2)],
        sigma_pm1=0.02,
        steps=2,
        latent_operator=h,
    )
    assert torch.isfinite(x_hat).all()


def test_command_function_writes_where_lookup_looks(monkeypatch, tmp_path, tiny_sd):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    args = (2, 2, None, None, "preserve", None, "l1", 0, 0.05, 0, None, "cpu")
    path = train_operator_command("gaussian", "inpaint", None, *args)
    cache = tmp_path / "latent-inverse-bench" / "operators"
    assert path == find_operator("gaussian", "inpaint:size=16", [cache])
    assert set(TRAIN_OPERATOR_HELP) >= {"prior", "deg", "steps", "resume", "variant"}
    with pytest.raises(ValueError, match="pass --data"):
        train_operator_command(str(tiny_sd), "sr4", None, *args)


def test_shipping_export_is_fp16_weights_only_and_loads(tiny_prior, photos, tmp_path):
    result = tiny_run(tiny_prior, photos, tmp_path / "full.pt")
    slim = export_for_shipping(result.path, tmp_path / "slim.pt")
    payload = read_checkpoint(slim)
    assert payload["optimizer"] is None and payload["rng"] is None
    assert all(
        v.dtype == torch.float16 for v in payload["state_dict"].values() if v.is_floating_point()
    )
    assert slim.stat().st_size < result.path.stat().st_size / 2
    op = build_degradation("sr4", 16)
    z = torch.randn(2, *tiny_prior.latent_shape)
    full, small = load_operator(result.path, tiny_prior, op), load_operator(slim, tiny_prior, op)
    torch.testing.assert_close(small(z, 0.02), full(z, 0.02), atol=5e-3, rtol=5e-3)


def test_narrow_preserve_widths_are_recorded_and_rebuilt(tiny_prior, photos, tmp_path):
    op = build_degradation("sr4", 16)
    result = tiny_run(tiny_prior, photos, tmp_path / "narrow.pt", widths=(16, 24))
    arch = read_checkpoint(result.path)["metadata"]["architecture"]
    assert (arch["base_channels"], arch["mid_channels"]) == (16, 24)
    net = load_operator(result.path, tiny_prior, op).net
    assert net.conv_in.out_channels == 16 and net.middle.conv1.out_channels == 24
    reference = build_network(network_architecture("preserve", tiny_prior, op), tiny_prior)
    assert reference.conv_in.out_channels == 48 and reference.middle.conv1.out_channels == 128
    assert parse_widths("32,96") == (32, 96) and parse_widths(None) is None
    with pytest.raises(ValueError, match="BASE,MIDDLE"):
        parse_widths("32")
    with pytest.raises(ValueError, match="preserve variant only"):
        network_architecture("noise-cnn", tiny_prior, op, (16, 24))
