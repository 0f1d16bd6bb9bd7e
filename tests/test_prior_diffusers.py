"""The diffusers prior backend on a tiny random SD-1.x pipeline built offline."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from tiny_sd import SD15_SCHEDULER, make_tiny_tokenizer
from transformers import CLIPTextModel, CLIPTokenizer

from bench.priors.base import Prior
from bench.priors.diffusers_prior import (
    ALIASES,
    DiffusersPrior,
    TokenizerTrapError,
    WeightsNotFound,
    load_diffusers_prior,
    resolve_model,
)

PROMPT = "a photo of a cat"
# diffusers 0.42 still passes a deprecated argument to huggingface_hub 2.x on hub-id loads.
pytestmark = pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks`:UserWarning")


@pytest.fixture(scope="module")
def prior(tiny_sd: Path) -> DiffusersPrior:
    """The tiny pipeline loaded the way a user's folder is."""
    return load_diffusers_prior(str(tiny_sd), prompt=PROMPT)


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _copy_without(tiny_sd: Path, dst: Path, component: str) -> Path:
    """A copy of the tiny pipeline with one component folder removed."""
    shutil.copytree(tiny_sd, dst)
    shutil.rmtree(dst / component)
    return dst


def test_loads_as_prior(prior: DiffusersPrior, tiny_sd: Path) -> None:
    assert isinstance(prior, Prior)
    assert prior.name == str(tiny_sd)
    assert prior.device == torch.device("cpu")
    assert prior.dtype == torch.float32
    assert prior.scheduler_config["beta_schedule"] == "scaled_linear"
    assert set(prior.modules()) == {"unet", "vae", "text_encoder"}


def test_shapes_from_configs(prior: DiffusersPrior) -> None:
    unet_cfg, vae_cfg = prior.unet.config, prior.vae.config
    s = unet_cfg.sample_size
    factor = 2 ** (len(vae_cfg.block_out_channels) - 1)
    assert prior.latent_shape == (unet_cfg.in_channels, s, s) == (4, 8, 8)
    assert prior.image_size == s * factor == 16
    assert prior.scaling_factor == vae_cfg.scaling_factor
    with torch.no_grad():
        z = prior.encode(_images(2, prior.image_size), sample=False)
        assert z.shape == (2, *prior.latent_shape)
        assert prior.decode(z).shape == (2, 3, prior.image_size, prior.image_size)
        assert prior.eps(z, torch.tensor([1, 999])).shape == z.shape


def test_alphas_cumprod_is_diffusers_schedule(prior: DiffusersPrior) -> None:
    config = {k: v for k, v in SD15_SCHEDULER.items() if k != "set_alpha_to_one"}
    expected = DDPMScheduler(**config).alphas_cumprod
    abar = prior.alphas_cumprod
    assert abar.dtype == torch.float64 and abar.device == torch.device("cpu")
    assert abar.shape == (1000,)
    torch.testing.assert_close(abar, expected.double(), rtol=1e-6, atol=1e-7)
    assert abar[-1].item() == pytest.approx(0.004660, abs=5e-6)


def test_eps_matches_direct_unet_call(prior: DiffusersPrior, tiny_sd: Path) -> None:
    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(tiny_sd / "text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(tiny_sd / "unet").eval()
    ids = tokenizer(
        [PROMPT] * 2, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    z = torch.randn(2, *prior.latent_shape, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 500])
    with torch.no_grad():
        expected = unet(z, t, encoder_hidden_states=text_encoder(ids)[0]).sample
        got = prior.eps(z, t)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(prior.eps(z, 10)[0], got[0])
        prior.set_prompt("")
        assert not torch.allclose(prior.eps(z, t), got)
        prior.set_prompt(PROMPT)
        torch.testing.assert_close(prior.eps(z, t), got)


def test_encode_mode(prior: DiffusersPrior, tiny_sd: Path) -> None:
    vae = AutoencoderKL.from_pretrained(tiny_sd / "vae").eval()
    x = _images(2, prior.image_size)
    with torch.no_grad():
        expected = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
        torch.testing.assert_close(prior.encode(x, sample=False), expected)


def test_encode_sample_per_sample_generators(prior: DiffusersPrior) -> None:
    x = _images(3, prior.image_size)

    def gens(*seeds: int) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(s) for s in seeds]

    with torch.no_grad():
        batch = prior.encode(x, generator=gens(5, 6, 7))
        torch.testing.assert_close(prior.encode(x, generator=gens(5, 6, 7)), batch)
        assert not torch.allclose(prior.encode(x, generator=gens(8, 6, 7))[0], batch[0])
        for i, seed in enumerate((5, 6, 7)):
            single = prior.encode(x[i : i + 1], generator=gens(seed))
            torch.testing.assert_close(single[0], batch[i], rtol=1e-5, atol=1e-5)
        dist = prior.vae.encode(x[:1]).latent_dist
        diffusers_draw = dist.sample(generator=gens(5)[0]) * prior.scaling_factor
        torch.testing.assert_close(prior.encode(x[:1], generator=gens(5)), diffusers_draw)
    with pytest.raises(ValueError, match="one generator per sample"):
        prior.encode(x, generator=gens(1))


def test_decode_differentiable_and_networks_frozen(prior: DiffusersPrior) -> None:
    for module in prior.modules().values():
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    z = torch.randn(2, *prior.latent_shape, requires_grad=True)
    prior.decode(z).square().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    x = _images(1, prior.image_size).requires_grad_(True)
    prior.encode(x, sample=False).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_aliases_resolve() -> None:
    assert ALIASES["sd15"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert ALIASES["rv51"] == "stablediffusionapi/realistic-vision-v51"
    assert resolve_model("sd15") == ALIASES["sd15"]
    assert resolve_model("rv51") == ALIASES["rv51"]
    assert resolve_model("botp/stable-diffusion-v1-5") == "botp/stable-diffusion-v1-5"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """HF_HUB_OFFLINE=1 with an empty Hugging Face cache; returns the cache folder."""
    cache = tmp_path / "hf_hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_offline_hub_id_raises_weights_not_found(offline: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(WeightsNotFound) as info:
        load_diffusers_prior("sd15", cache_dir=offline)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert ALIASES["sd15"] in message and "'sd15'" in message
    assert str(offline) in message
    assert f"hf download {ALIASES['sd15']}" in message
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value.__cause__, OSError)


def test_offline_hub_id_loads_from_cache(offline: Path, tiny_sd: Path) -> None:
    revision = "0" * 40
    repo = offline / "models--someone--tiny-sd"
    shutil.copytree(tiny_sd, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    prior = load_diffusers_prior("someone/tiny-sd", cache_dir=offline)
    assert prior.name == "someone/tiny-sd" and prior.latent_shape == (4, 8, 8)


def test_missing_folder_raises_weights_not_found(offline: Path, tmp_path: Path) -> None:
    folder = tmp_path / "no_such_model"
    with pytest.raises(WeightsNotFound, match="no_such_model") as info:
        load_diffusers_prior(str(folder))
    assert str(folder) in str(info.value)


def test_folder_missing_component(tiny_sd: Path, tmp_path: Path) -> None:
    folder = _copy_without(tiny_sd, tmp_path / "partial", "text_encoder")
    with pytest.raises(WeightsNotFound, match="missing: text_encoder/"):
        load_diffusers_prior(str(folder))


def test_tokenizer_trap_two_token_vocab(tiny_sd: Path, tmp_path: Path) -> None:
    folder = _copy_without(tiny_sd, tmp_path / "bad_tok", "tokenizer")
    make_tiny_tokenizer(symbols="").save_pretrained(folder / "tokenizer")
    with pytest.raises(TokenizerTrapError, match="len\\(tokenizer\\)=2.*offline tokenizer trap"):
        load_diffusers_prior(str(folder))
