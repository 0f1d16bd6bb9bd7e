"""The `embedded` prior: a small SD-1.5-shaped LDM trained on sample photos, shipped in fp16.

Same code path as SD: a diffusers AutoencoderKL + UNet2DConditionModel behind DiffusersPrior,
epsilon prediction on the SD scaled-linear schedule. Instead of CLIP, the UNet cross-attends to
one fixed prompt embedding learned with it (the model is unconditional).
Rebuild the weights with `python benchmarks/train_embedded.py --stage all`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file

from bench.data import ImageSource
from bench.embedded_data import embedded_heldout_source, embedded_training_source
from bench.priors.diffusers_prior import DiffusersPrior
from bench.priors.schedule import SD_SCHEDULER_CONFIG

WEIGHTS_DIR = Path(__file__).parent / "embedded_weights"
IMAGE_SIZE = 64
PROMPT_TOKENS = 4
CROSS_ATTENTION_DIM = 64
REBUILD = "python benchmarks/train_embedded.py --stage all"
WEIGHT_FILES = (
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "prompt_embedding.safetensors",
)

VAE_CONFIG: dict = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [32, 64, 128],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": IMAGE_SIZE,
    "mid_block_add_attention": False,
    "scaling_factor": 1.0,  # replaced by 1/std of the training latents
}

UNET_CONFIG: dict = {
    "sample_size": IMAGE_SIZE // 4,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64, 128],
    "layers_per_block": 1,
    "attention_head_dim": 8,
    "cross_attention_dim": CROSS_ATTENTION_DIM,
    "norm_num_groups": 32,
}


class EmbeddedWeightsMissing(FileNotFoundError):
    """A shipped weight file of the embedded prior is missing."""


class PromptEmbedding(torch.nn.Module):
    """The fixed (learned) stand-in for CLIP's output: (1, tokens, cross_attention_dim)."""

    def __init__(self, tokens: int = PROMPT_TOKENS, dim: int = CROSS_ATTENTION_DIM) -> None:
        """A zero-initialised embedding; training learns it with the UNet."""
        super().__init__()
        self.embedding = torch.nn.Parameter(torch.zeros(1, tokens, dim))

    def forward(self, batch: int = 1) -> torch.Tensor:
        """The embedding expanded to `batch` rows."""
        return self.embedding.expand(batch, -1, -1)


class EmbeddedPrior(DiffusersPrior):
    """DiffusersPrior whose prompt is a shipped embedding: eps/encode/decode are SD's code."""

    # `bench run` defaults sized for a 2-core CPU (a few minutes per solver on the 16 crops);
    # the solvers' official lengths apply whenever --steps is given.
    run_defaults = {"steps": 100, "batch": 8}

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        prompt_embedding: PromptEmbedding,
        name: str = "embedded",
    ) -> None:
        """Freeze the components; the prompt embedding plays the text encoder's part."""
        super().__init__(name, unet, vae, prompt_embedding, None, SD_SCHEDULER_CONFIG)

    @torch.no_grad()
    def set_prompt(self, prompt: str) -> None:
        """The model is unconditional: every prompt maps to the shipped embedding."""
        self.prompt = prompt
        self.prompt_embedding = self.text_encoder().to(self.device, self.dtype)

    def default_source(self) -> ImageSource:
        """The data set `bench run` uses without --data: fixed crops of the held-out photos."""
        return embedded_heldout_source(self.image_size)

    def training_source(self) -> ImageSource:
        """What `bench train-operator` trains on without --data: crops of the training photos."""
        return embedded_training_source(self.image_size)


def load_embedded_prior(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    folder: str | Path = WEIGHTS_DIR,
) -> EmbeddedPrior:
    """The shipped embedded prior (fp16 files upcast to `dtype`, float32 by default)."""
    folder = Path(folder)
    for rel in WEIGHT_FILES:
        if not (folder / rel).is_file():
            raise EmbeddedWeightsMissing(
                f"embedded prior: missing weight file {folder / rel}. "
                f"Rebuild the shipped weights with `{REBUILD}` (about 1.5 h on 2 CPU cores), "
                "or reinstall the package."
            )
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=dtype)
    embedding = load_file(folder / "prompt_embedding.safetensors")["embedding"]
    prompt = PromptEmbedding(*embedding.shape[1:])
    prompt.embedding.data.copy_(embedding)
    prompt.to(dtype)
    device = torch.device(device)
    return EmbeddedPrior(unet.to(device), vae.to(device), prompt.to(device))
