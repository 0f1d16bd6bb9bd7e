"""A tiny random Stable-Diffusion-1.x pipeline in diffusers folder layout, built offline."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from bench.priors.schedule import SD_SCHEDULER_CONFIG

SD15_SCHEDULER = SD_SCHEDULER_CONFIG

TINY_UNET_SAMPLE_SIZE = 8  # latents (4, 8, 8)
TINY_VAE_FACTOR = 2  # two VAE blocks: images are 16 x 16
TINY_HIDDEN = 32  # CLIP hidden size == UNet cross_attention_dim
TINY_SYMBOLS = string.ascii_lowercase + string.digits + ".,!?'-"


def make_tiny_tokenizer(symbols: str = TINY_SYMBOLS) -> CLIPTokenizer:
    """A character-level CLIP tokenizer (no merges): 2 special tokens + 2 per symbol."""
    chars = list(symbols)
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    with tempfile.TemporaryDirectory() as src:
        (Path(src) / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
        (Path(src) / "merges.txt").write_text("#version: 0.2\n")
        # transformers 5 ignores `vocab_file=` in the constructor (an empty tokenizer results);
        # from_pretrained on the folder reads vocab.json + merges.txt on every version.
        return CLIPTokenizer.from_pretrained(src, model_max_length=77)


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Write a deterministic tiny random SD-1.x pipeline (16 px images) to `folder`; return it."""
    folder = Path(folder)
    tokenizer = make_tiny_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=TINY_UNET_SAMPLE_SIZE,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY_HIDDEN,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        sample_size=TINY_UNET_SAMPLE_SIZE * TINY_VAE_FACTOR,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=TINY_HIDDEN,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=len(tokenizer),
        )
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDPMScheduler.from_config(SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
