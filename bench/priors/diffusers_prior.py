"""The `diffusers` prior backend: any SD-1.x folder or Hugging Face id (DESIGN.md §3, §7)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from huggingface_hub import constants as hf_constants
from transformers import CLIPTextModel, CLIPTokenizer

ALIASES: dict[str, str] = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "rv51": "stablediffusionapi/realistic-vision-v51",
}
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_TRUE = {"1", "on", "yes", "true"}


class WeightsNotFound(FileNotFoundError):
    """The model's files are neither in a local folder nor in the Hugging Face cache."""


class TokenizerTrapError(RuntimeError):
    """The tokenizer does not match its text encoder (the silently empty offline tokenizer)."""


def resolve_model(model: str) -> str:
    """Map an alias (`sd15`, `rv51`) to its Hugging Face id; anything else is returned as is."""
    return ALIASES.get(model, model)


def looks_like_path(model: str) -> bool:
    """True for an existing path or a string that cannot be a Hugging Face `owner/name` id."""
    if Path(model).expanduser().exists():
        return True
    return (
        model.startswith(("/", ".", "~"))
        or model.count("/") > 1
        or "\\" in model
        or model.endswith("/")
    )


def offline_requested() -> bool:
    """True when HF_HUB_OFFLINE is set (read now, not only at huggingface_hub's import)."""
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    return env or bool(hf_constants.HF_HUB_OFFLINE)


def download_command(repo_id: str, cache_dir: str | os.PathLike | None = None) -> str:
    """The `hf download` command that fetches the components this backend loads."""
    includes = " ".join(f'--include "{c}/*"' for c in COMPONENTS)
    cmd = (
        f'hf download {repo_id} --include "model_index.json" {includes} '
        '--exclude "*.fp16.*" --exclude "*non_ema*"'
    )
    return f'{cmd} --cache-dir "{cache_dir}"' if cache_dir is not None else cmd


def _not_found(
    model: str,
    repo_id: str,
    searched: list[str],
    is_path: bool,
    cache_dir: str | os.PathLike | None,
    err: OSError | None = None,
) -> WeightsNotFound:
    """Build the WeightsNotFound error that names the id, the folders searched and the fix."""
    named = f"{model!r} (= {repo_id!r})" if model != repo_id else repr(model)
    lines = [f"Diffusers prior {named}: model files not found.", "Searched:"]
    lines += [f"  - {s}" for s in searched]
    if err is not None:
        lines.append(f"Loader error: {(str(err).splitlines() or [type(err).__name__])[0]}")
    if is_path:
        lines.append(
            "A local folder must be in diffusers layout: model_index.json, "
            + ", ".join(f"{c}/" for c in COMPONENTS)
            + "."
        )
    else:
        lines.append("On a machine with network access, fetch it with:")
        lines.append(f"  {download_command(repo_id, cache_dir)}")
        lines.append(
            "then copy the cache folder here (or set HF_HUB_CACHE / HF_HOME to it), "
            "or pass a local diffusers folder instead of the id."
        )
    return WeightsNotFound("\n".join(lines))


def check_tokenizer(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, source: str) -> None:
    """Raise TokenizerTrapError unless the tokenizer fits its text encoder (49408 tokens for SD)."""
    vocab_size = text_encoder.config.vocab_size
    max_pos = text_encoder.config.max_position_embeddings
    n, max_len = len(tokenizer), tokenizer.model_max_length
    if n == vocab_size and n > 2 and max_len <= min(max_pos, 1e6):
        return
    raise TokenizerTrapError(
        f"Tokenizer of {source!r} is broken: len(tokenizer)={n}, model_max_length={max_len:.3g}, "
        f"but its text encoder has vocab_size={vocab_size} and max_position_embeddings={max_pos} "
        "(49408 and 77 for SD-1.x). This is the offline tokenizer trap: "
        "CLIPTokenizer.from_pretrained returns an empty 2-token tokenizer with "
        "model_max_length=1e30, without any error, when its files (tokenizer/vocab.json + "
        "merges.txt, or tokenizer.json) are missing, and every prompt then encodes to the same "
        "tokens. Fix: re-download the tokenizer/ folder of the model (see `hf download`), or "
        "point the prior at a complete local diffusers folder."
    )


class DiffusersPrior:
    """A frozen SD-1.x latent diffusion model (UNet, VAE, CLIP text encoder) as a Prior."""

    def __init__(
        self,
        name: str,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler_config: dict,
        prompt: str = "",
    ) -> None:
        """Freeze the loaded components, derive shapes and the schedule, encode the prompt."""
        prediction_type = scheduler_config.get("prediction_type", "epsilon")
        if prediction_type != "epsilon":
            raise ValueError(
                f"Prior {name!r}: scheduler prediction_type is {prediction_type!r}; "
                "only 'epsilon' models are supported."
            )
        self.name = name
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        for module in (unet, vae, text_encoder):
            module.requires_grad_(False)
            module.eval()
        self.device = unet.device
        self.dtype = unet.dtype
        self.scheduler_config = dict(scheduler_config)
        # diffusers' own float32 schedule cast to float64: bit-identical to what its schedulers
        # step with (solvers are tested against them) and it honours every beta_schedule option.
        scheduler = DDPMScheduler.from_config(self.scheduler_config)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(dtype=torch.float64, device="cpu")
        s = unet.config.sample_size
        self.latent_shape = (unet.config.in_channels, s, s)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_size = s * self.vae_scale_factor
        self.scaling_factor = float(vae.config.scaling_factor)
        self.set_prompt(prompt)

    @torch.no_grad()
    def set_prompt(self, prompt: str) -> None:
        """Encode `prompt` once; eps() conditions on it until the next call."""
        ids = self.tokenizer(
            prompt,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        self.prompt = prompt
        self.prompt_embedding = self.text_encoder(ids)[0].to(self.dtype)

    def eps(self, z_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """epsilon_theta(z_t, t) under the baked-in prompt; t is (B,) ints or one int."""
        b = z_t.shape[0]
        t = torch.as_tensor(t, device=self.device).long().expand(b)
        emb = self.prompt_embedding.expand(b, -1, -1)
        return self.unet(z_t.to(self.dtype), t, encoder_hidden_states=emb).sample

    def encode(
        self,
        x: torch.Tensor,
        sample: bool = True,
        generator: Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Scaled latents of images x in [-1, 1]; `sample` draws per sample with generator[i]."""
        dist = self.vae.encode(x.to(self.device, self.dtype)).latent_dist
        if not sample:
            return dist.mode() * self.scaling_factor
        mean = dist.mean
        if generator is None:
            noise = torch.randn_like(mean)
        else:
            if len(generator) != mean.shape[0]:
                raise ValueError(f"need one generator per sample: {len(generator)} for {len(mean)}")
            noise = torch.stack(
                [
                    torch.randn(mean.shape[1:], generator=g, device=g.device, dtype=mean.dtype)
                    for g in generator
                ]
            ).to(mean.device)
        return (mean + dist.std * noise) * self.scaling_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in about [-1, 1] from scaled latents; differentiable w.r.t. z."""
        return self.vae.decode(z.to(self.dtype) / self.scaling_factor).sample

    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks, for hooks and call counting."""
        return {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder}


def load_diffusers_prior(
    model: str,
    *,
    prompt: str = "",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
) -> DiffusersPrior:
    """Load an SD-1.x prior from an alias, a Hugging Face id or a local diffusers folder.

    `local_files_only=None` means: only local files when HF_HUB_OFFLINE is set.
    """
    repo_id = resolve_model(model)
    is_path = looks_like_path(repo_id)
    if is_path:
        source = str(Path(repo_id).expanduser())
        searched = [str(Path(source).resolve())]
        local_files_only = True
        missing = [c for c in COMPONENTS if not Path(source, c).is_dir()]
        if missing:
            searched[0] += f" (missing: {', '.join(f'{c}/' for c in missing)})"
            raise _not_found(model, repo_id, searched, True, None)
    else:
        source = repo_id
        cache = str(cache_dir) if cache_dir is not None else hf_constants.HF_HUB_CACHE
        searched = [f"Hugging Face cache {cache}"]
        if local_files_only is None:
            local_files_only = offline_requested()
        if not local_files_only:
            searched.append("the Hugging Face Hub (online)")
    kw = {"cache_dir": cache_dir, "local_files_only": local_files_only}
    try:
        scheduler_config = dict(DDPMScheduler.load_config(source, subfolder="scheduler", **kw))
        unet = UNet2DConditionModel.from_pretrained(
            source, subfolder="unet", torch_dtype=dtype, **kw
        )
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **kw)
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kw)
    except OSError as err:
        raise _not_found(model, repo_id, searched, is_path, cache_dir, err) from err
    check_tokenizer(tokenizer, text_encoder, model)
    device = torch.device(device)
    return DiffusersPrior(
        name=model,
        unet=unet.to(device),
        vae=vae.to(device),
        # transformers >= 5 loads in the checkpoint's dtype by default: cast explicitly.
        text_encoder=text_encoder.to(device=device, dtype=dtype),
        tokenizer=tokenizer,
        scheduler_config=scheduler_config,
        prompt=prompt,
    )
