"""The networks `bench profile` times: a prior's UNet and VAE from their configs, random weights."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.priors.base import Prior
from bench.priors.embedded import EmbeddedPrior, PromptEmbedding, load_embedded_prior
from operators.base import Degradation
from operators.latent.operator import LearnedLatentOperator

CONFIGS = Path(__file__).parent / "configs"
SHIPPED_ARCHS = ("sd15", "sd21-base")  # diffusers unet/ and vae/ configs of the official repos
PROMPT_TOKENS = 77  # CLIP's sequence length: what SD's cross-attention attends to
OPERATOR_VARIANT = "preserve"  # SILO's default latent operator (silo.md §2.3) at its real widths


class RandomWeightsPrior(EmbeddedPrior):
    """An SD-shaped prior with random weights; a random prompt embedding stands in for CLIP."""


def config_folder(arch: str) -> Path:
    """The folder holding unet/config.json and vae/config.json for `arch` (shipped or a path)."""
    if arch in SHIPPED_ARCHS:
        return CONFIGS / arch
    folder = Path(arch).expanduser()
    if all((folder / part / "config.json").is_file() for part in ("unet", "vae")):
        return folder
    raise ValueError(
        f"--arch {arch!r} is neither embedded, {', '.join(SHIPPED_ARCHS)} nor a diffusers "
        "folder with unet/config.json and vae/config.json"
    )


def native_size(arch: str) -> int:
    """The image size the architecture was trained at (its VAE config's sample_size)."""
    if arch == "embedded":
        from bench.priors.embedded import IMAGE_SIZE

        return IMAGE_SIZE
    from diffusers import AutoencoderKL

    return int(AutoencoderKL.load_config(config_folder(arch) / "vae")["sample_size"])


def profile_prior(arch: str, size: int, device: str, dtype: torch.dtype, seed: int = 0) -> Prior:
    """The shipped embedded prior, or `arch`'s UNet and VAE built at size x size, random weights."""
    if arch == "embedded":
        if size != native_size(arch):
            raise ValueError(f"--size: the embedded prior is {native_size(arch)} px, not {size}")
        return load_embedded_prior(device=device, dtype=dtype)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = config_folder(arch)
    vae_config = AutoencoderKL.load_config(folder / "vae")
    factor = 2 ** (len(vae_config["block_out_channels"]) - 1)
    if size % (8 * factor):
        raise ValueError(f"--size must be a multiple of {8 * factor} for {arch!r}, got {size}")
    torch.manual_seed(seed)
    unet_config = UNet2DConditionModel.load_config(folder / "unet")
    with torch.device(device):  # built in place: on "meta" without memory (FLOP counting)
        unet = UNet2DConditionModel.from_config({**unet_config, "sample_size": size // factor})
        vae = AutoencoderKL.from_config({**vae_config, "sample_size": size})
        prompt = PromptEmbedding(PROMPT_TOKENS, unet.config.cross_attention_dim)
        torch.nn.init.normal_(prompt.embedding)
    if dtype != torch.float32:
        unet, vae, prompt = unet.to(dtype), vae.to(dtype), prompt.to(dtype)
    return RandomWeightsPrior(unet, vae, prompt, name=arch)


def profile_operator(prior: Prior, op: Degradation) -> LearnedLatentOperator:
    """SILO's H for (prior, op): the shipped one, else untrained at its real widths."""
    if not isinstance(prior, RandomWeightsPrior):
        from operators.latent.lookup import resolve_trained_operator

        return resolve_trained_operator(prior, op)
    from operators.latent.factory import build_network, network_architecture

    with torch.device(prior.device):
        net = build_network(network_architecture(OPERATOR_VARIANT, prior, op), prior)
    return LearnedLatentOperator(net.to(prior.dtype)).bind(op)
