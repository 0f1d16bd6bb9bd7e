"""SILO's latent operator networks: sizes, embeddings, feature hooks, lookup, SILO's use of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel

from bench.counters import CountedPrior, counting
from bench.priors.gaussian import GaussianPrior
from bench.sweep import canonical_spec
from operators import build_degradation, measure
from operators.latent import (
    LearnedLatentOperator,
    NoiseCNN,
    PreserveCNN,
    ReadoutNetwork,
    UNetFeatureReader,
    active_operator_folders,
    build_network,
    default_operator_folders,
    find_operator,
    load_operator,
    network_architecture,
    operator_filename,
    parameter_count,
    save_checkpoint,
    using_operator_folders,
)
from operators.latent.checkpoint import base_metadata
from operators.latent.embeddings import (
    noise_embedding,
    position_embedding,
    sinusoidal_sigma_embedding,
    unet_sigma_embedding,
)
from operators.latent.readout import feature_channels
from solvers.silo import silo

SD15_UNET = {
    "sample_size": 64,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
}
STEPS = 4


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def random_operator(variant: str, prior, op) -> LearnedLatentOperator:
    """An untrained network of the variant, wrapped as SILO receives trained ones."""
    torch.manual_seed(0)
    net = build_network(network_architecture(variant, prior, op), prior)
    return LearnedLatentOperator(net, unet=prior.modules().get("unet"))


# Sizes at SD-1.5 shape (silo.md §2) ------------------------------------------------------
def test_sd15_channel_layout_read_from_a_real_unet_config():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
    assert feature_channels(unet) == [1280] * 6 + [640] * 3 + [320] * 3
    assert unet_sigma_embedding(unet).dim == 1280


def test_parameter_counts_match_the_reference_at_sd15_size():
    channels = [1280] * 6 + [640] * 3 + [320] * 3
    emb = sinusoidal_sigma_embedding(1280)  # the UNet's time MLP is outside the operator
    assert parameter_count(PreserveCNN()) == 1_185_690
    assert parameter_count(NoiseCNN(emb, (4, 64, 64))) == 3_548_566
    with torch.device("meta"):
        readout = ReadoutNetwork(channels, emb, (64, 64))
        masked = ReadoutNetwork(channels, emb, (64, 64), cond_mask=True)
    assert parameter_count(readout) == 13_746_864
    assert parameter_count(masked) == 13_748_016
    assert sum(b.emb.weight.numel() + b.emb.bias.numel() for b in readout.blocks) == 1_475_712
    assert parameter_count(readout.head) == 480_676


# Embeddings --------------------------------------------------------------------------------
def test_noise_embedding_is_interleaved_sin_cos_of_sigma_over_max_noise():
    e = noise_embedding(torch.tensor([0.0, 0.05]), dim=128, max_noise=0.1)
    assert e.shape == (2, 128)
    torch.testing.assert_close(e[0, 0::2], torch.zeros(64))
    torch.testing.assert_close(e[0, 1::2], torch.ones(64))
    assert e[1, 0] == pytest.approx(torch.sin(torch.tensor(0.5)).item())  # f_0 = 1
    assert e[1, 126] == pytest.approx(torch.sin(torch.tensor(0.5e-4)).item(), rel=1e-4)


def test_position_embedding_channels_per_axis():
    p = position_embedding(3, 5, 8)
    assert p.shape == (8, 3, 5)
    torch.testing.assert_close(p[0, :, 0], torch.sin(torch.tensor([0.0, 0.5, 1.0])))
    assert torch.equal(p[0, :, 0], p[0, :, 4])  # y channels do not vary along x
    torch.testing.assert_close(p[5, 0, :], torch.cos(torch.linspace(0, 1, 5)))


# Networks on small latents -----------------------------------------------------------------
@pytest.mark.parametrize("variant", ["preserve", "noise-cnn"])
def test_cnn_variants_are_batch_independent_with_per_sample_sigma(variant):
    prior = GaussianPrior(image_size=16, factor=4)
    op = build_degradation("sr4", 16)
    net = build_network(network_architecture(variant, prior, op), prior)
    z = torch.randn(3, 4, 4, 4)
    sigmas = torch.tensor([0.0, 0.02, 0.04])
    together = net(z, sigmas)
    single = torch.cat([net(z[i : i + 1], float(sigmas[i])) for i in range(3)])
    torch.testing.assert_close(together, single, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(net(z, 0.0), net(z, 0.04))  # the noise level conditions H


def test_feature_reader_captures_every_up_block_resnet_and_cleans_up(tiny_prior):
    unet = tiny_prior.unet
    reader = UNetFeatureReader(unet)
    z = torch.randn(2, *tiny_prior.latent_shape)
    with reader.capture() as features:
        tiny_prior.eps(z, torch.tensor([10, 500]))
    assert [f.shape[1] for f in features.maps] == feature_channels(unet)
    assert features.emb.shape == (2, unet.time_embedding.linear_2.out_features)
    assert all(not r.conv2._forward_hooks for r in reader.resnets)
    assert not unet.time_embedding._forward_hooks


def test_readout_gradient_reaches_z_t_through_the_unet(tiny_prior):
    op = build_degradation("sr4", tiny_prior.image_size)
    h = random_operator("readout", tiny_prior, op)
    z = torch.randn(1, *tiny_prior.latent_shape, requires_grad=True)
    with h.capture() as features:
        tiny_prior.eps(z, torch.tensor([300]))
    (g,) = torch.autograd.grad(h(features, 0.02).square().sum(), z)
    assert g.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in h.net.parameters())


def test_mask_conditioned_readout_binds_the_seeded_mask(tiny_prior):
    op = build_degradation("inpaint-random", tiny_prior.image_size)
    h = random_operator("readout", tiny_prior, op)
    assert h.needs_mask
    with pytest.raises(ValueError, match="seed it"):
        h.bind(op)
    seeded = op.seeded(gens(3))
    assert torch.equal(h.bind(seeded).mask, seeded.mask)
    with pytest.raises(ValueError, match="readout variant"):
        network_architecture("preserve", tiny_prior, op)


# SILO with each variant ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variant", "deg"), [("preserve", "sr4"), ("noise-cnn", "sr4"), ("readout", "inpaint-random")]
)
def test_silo_never_backpropagates_through_the_vae(tiny_prior, variant, deg):
    op = build_degradation(deg, tiny_prior.image_size).seeded(gens(5))
    h = random_operator(variant, tiny_prior, op)
    x = torch.rand(1, 3, tiny_prior.image_size, tiny_prior.image_size) * 2 - 1
    y = measure(op, x, 0.02, gens(0))
    with counting() as counts:
        x_hat = silo(
            CountedPrior(tiny_prior),
            op,
            y,
            generator=gens(1),
            sigma_pm1=0.02,
            steps=STEPS,
            latent_operator=h,
        )
    assert torch.isfinite(x_hat).all()
    vae = {k: counts[k] for k in ("dec_fwd", "dec_bwd", "enc_fwd", "enc_bwd")}
    assert vae == {"dec_fwd": 1, "dec_bwd": 0, "enc_fwd": 1, "enc_bwd": 0}
    assert (counts["op_fwd"], counts["op_bwd"]) == (STEPS, STEPS)
    assert (counts["unet_fwd"], counts["unet_bwd"]) == (STEPS, STEPS)
    assert all(not p.requires_grad and p.grad is None for p in h.net.parameters())


# Files and lookup -------------------------------------------------------------------------
def write_operator(folder: Path, prior, prior_id: str, op, variant: str = "preserve") -> Path:
    """A checkpoint of an untrained network, named as lookup expects."""
    arch = network_architecture(variant, prior, op)
    net = build_network(arch, prior)
    path = folder / operator_filename(prior_id, canonical_spec(op), variant)
    meta = {**base_metadata(prior_id, prior, op, arch), "history": []}
    return save_checkpoint(path, net=net, metadata=meta, optimizer=None, step=0, rng=None)


class Renamed:
    """A prior seen under another id (as sd15 or rv51 would be)."""

    def __init__(self, prior, name: str) -> None:
        self._prior, self.name = prior, name

    def __getattr__(self, attr):
        return getattr(self._prior, attr)


def test_default_folders_are_the_user_cache_then_the_shipped_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache, shipped = default_operator_folders()
    assert cache == tmp_path / "latent-inverse-bench" / "operators"
    assert shipped.name == "shipped" and (shipped / ".gitkeep").is_file()


def test_missing_operator_names_the_exact_train_command(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        find_operator("sd15", "sr4:factor=4", [tmp_path / "a", tmp_path / "b"])
    message = str(info.value)
    target = tmp_path / "a" / operator_filename("sd15", "sr4:factor=4")
    assert (
        f"bench train-operator --prior sd15 --deg sr4:factor=4 --data IMAGE_FOLDER --out {target}"
        in message
    )
    assert str(tmp_path / "b") in message


def test_lookup_prefers_earlier_folders_and_the_default_variant(tmp_path):
    prior = GaussianPrior(image_size=16, factor=4)
    op = build_degradation("sr4", 16)
    late = write_operator(tmp_path / "b", prior, "gaussian", op)
    write_operator(tmp_path / "a", prior, "gaussian", op, "noise-cnn")
    preserve = write_operator(tmp_path / "a", prior, "gaussian", op)
    assert find_operator("gaussian", canonical_spec(op), [tmp_path / "a", tmp_path / "b"]) == (
        preserve
    )
    assert find_operator("gaussian", canonical_spec(op), [tmp_path / "b"]) == late


def test_checkpoint_for_sr4_on_sd15_is_refused_for_blur_or_rv51(tmp_path):
    oracle = GaussianPrior(image_size=16, factor=4)
    sr4 = build_degradation("sr4", 16)
    path = write_operator(tmp_path, oracle, "sd15", sr4)
    load_operator(path, Renamed(oracle, "stable-diffusion-v1-5/stable-diffusion-v1-5"), sr4)
    with pytest.raises(ValueError, match=r"degradation: checkpoint 'sr4:factor=4', run 'blur:"):
        load_operator(path, Renamed(oracle, "sd15"), build_degradation("blur", 16))
    with pytest.raises(ValueError, match=r"prior: checkpoint 'sd15', run 'rv51'") as info:
        load_operator(path, Renamed(oracle, "rv51"), sr4)
    assert "bench train-operator --prior rv51 --deg sr4:factor=4" in str(info.value)
    with pytest.raises(ValueError, match="latent shape"):
        load_operator(path, Renamed(GaussianPrior(image_size=32, factor=4), "sd15"), sr4)


def test_silo_finds_a_trained_operator_for_a_folder_prior(tiny_prior, tiny_sd, tmp_path):
    op = build_degradation("sr4", tiny_prior.image_size)
    y = measure(op, torch.zeros(1, 3, 16, 16), 0.02, gens(0))
    with using_operator_folders([tmp_path]), pytest.raises(FileNotFoundError, match="--prior"):
        silo(tiny_prior, op, y, generator=gens(1), sigma_pm1=0.02, steps=2)
    write_operator(tmp_path, tiny_prior, str(tiny_sd), op)
    with using_operator_folders([tmp_path]):
        x_hat = silo(tiny_prior, op, y, generator=gens(1), sigma_pm1=0.02, steps=2)
    assert torch.isfinite(x_hat).all()


def test_a_sweep_records_the_missing_operator_command_then_uses_the_trained_one(
    tiny_prior, tiny_sd, tmp_path
):
    from bench.data import ImageSource
    from bench.execute import RunContext, run_cells
    from bench.sweep import Cell

    source = ImageSource("zeros", ["0"], lambda image_id: torch.zeros(3, 16, 16))
    op = build_degradation("sr4", 16)
    cell = Cell(
        prior=str(tiny_sd),
        dataset=source.name,
        image_id="0",
        degradation=canonical_spec(op),
        sigma_01=0.01,
        solver="silo",
        hparams={"steps": 2},
    )
    cells = [cell]
    with using_operator_folders([tmp_path / "ops"]):
        (missing,) = run_cells(RunContext(tiny_prior, source, tmp_path / "run1"), cells)
        write_operator(tmp_path / "ops", tiny_prior, str(tiny_sd), op)
        (found,) = run_cells(RunContext(tiny_prior, source, tmp_path / "run2"), cells)
    assert missing["status"] == "error"
    assert f"bench train-operator --prior {tiny_sd} --deg sr4:factor=4" in missing["error"]
    assert found["status"] == "ok" and found["op_fwd"] == found["op_bwd"] == 2


def test_worker_processes_find_the_folders_through_the_environment(monkeypatch, tmp_path):
    folders = os.pathsep.join([str(tmp_path / "x"), str(tmp_path / "y")])
    monkeypatch.setenv("LATENT_BENCH_OPERATORS", folders)
    assert active_operator_folders() == [tmp_path / "x", tmp_path / "y"]
    with using_operator_folders([tmp_path / "z"]):
        assert active_operator_folders() == [tmp_path / "z"]


def test_the_former_operators_variable_still_works_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.delenv("LATENT_BENCH_OPERATORS", raising=False)
    monkeypatch.setenv("LATENT_INVERSE_BENCH_OPERATORS", str(tmp_path / "old"))
    with pytest.warns(
        FutureWarning,
        match=r"\$LATENT_INVERSE_BENCH_OPERATORS is deprecated.*"
        r"\$LATENT_BENCH_OPERATORS",
    ):
        assert active_operator_folders() == [tmp_path / "old"]
    monkeypatch.setenv("LATENT_BENCH_OPERATORS", str(tmp_path / "new"))
    assert active_operator_folders() == [tmp_path / "new"]  # the new name wins
