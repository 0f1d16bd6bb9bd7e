"""Operators from the official SILO release: its state-dict names mapped to our networks.

The official code saves the CNN (`DegradationModel`) and the preserve CNN
(`preserve_LatentDegradationNetwork.LatentDegradationNetwork`) as bare state dicts and the
readout network (`AggregationNetwork`) under the key "aggregation_network" (silo.md §2). Our
networks have the same layers and parameter counts under other names; the rules below rename
them, and every name and shape is then checked against the network built for the run.
An imported readout network runs its bottlenecks without the timestep embedding, as the
official sampling does (silo.md §8, pitfall 1). The preserve CNN's fixed 64 x 64 position
buffer is checked, not loaded: we compute the same map at the latent's size (the official
code interpolates the 64 x 64 one; the two agree for SD-1.x's 64 x 64 latents).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from torch import nn

from operators.latent.embeddings import position_embedding

# the official variant names (silo_sample.py --model) -> ours
OFFICIAL_VARIANTS = {"cnn": "noise-cnn", "preserve": "preserve", "readout": "readout"}
READOUT_KEY = "aggregation_network"  # where the readout training script stores its weights
OFFICIAL_POSITION_SIZE = 64  # the preserve CNN's fixed position buffer is built at 64 x 64


def _triplet(prefix: str, ours: str):
    """A flat official Sequential (conv, norm, ReLU) x n -> ours[n].(0 conv | 1 norm)."""
    pattern = re.compile(rf"^{prefix}\.(\d+)\.(weight|bias)$")

    def rename(key: str) -> str | None:
        m = pattern.match(key)
        if m is None:
            return None
        index = int(m.group(1))
        return f"{ours}.{index // 3}.{index % 3}.{m.group(2)}"

    return rename


def _regex(pattern: str, replacement: str):
    """A rule renaming keys that match `pattern` (None for the others)."""
    compiled = re.compile(pattern)

    def rename(key: str) -> str | None:
        return compiled.sub(replacement, key) if compiled.match(key) else None

    return rename


RULES = {
    "preserve": [
        _regex(r"^initial_proj\.0\.", "color_proj.0."),
        _regex(r"^initial_conv\.", "conv_in."),
        _regex(r"^final_conv\.", "conv_out."),
        _regex(r"^identity_gate\.0\.", "gate."),
        _regex(r"^skip_scale$", "skip_scale"),
        _regex(r"^blocks\.(\d+)\.noise_proj\.", r"down.\1.noise."),
        _regex(r"^blocks\.(\d+)\.skip_conv\.", r"down.\1.skip."),
        _regex(r"^blocks\.(\d+)\.", r"down.\1."),
        _regex(r"^bottleneck\.noise_proj\.", "middle.noise."),
        _regex(r"^bottleneck\.skip_conv\.", "middle.skip."),
        _regex(r"^bottleneck\.", "middle."),
        _regex(r"^up_blocks\.(\d+)\.noise_proj\.", r"up.\1.noise."),
        _regex(r"^up_blocks\.(\d+)\.skip_conv\.", r"up.\1.skip."),
        _regex(r"^up_blocks\.(\d+)\.", r"up.\1."),
    ],
    "noise-cnn": [
        _regex(r"^sigma_condition_precondition\.([02])\.", r"sigma_map.\1."),
        _triplet("encoder", "encoder"),
        _triplet("decoder", "decoder"),
        _regex(r"^adjust_encoding\.([01])\.", r"skip.\1."),
        _regex(r"^processing\.([01])\.", r"process.0.\1."),
        _regex(r"^processing\.3\.", "process.1."),
    ],
    "readout": [
        _regex(r"^sigma_emb_linear\.", "sigma_linear."),
        _regex(r"^sigma_emb_norm\.", "sigma_norm."),
        _regex(r"^mixing_weights$", "mixing"),
        _regex(r"^output_head\.", "head."),
        _regex(r"^bottleneck_layers\.(\d+)\.conv([123])\.weight$", r"blocks.\1.conv\2.weight"),
        _regex(r"^bottleneck_layers\.(\d+)\.conv([123])\.norm\.", r"blocks.\1.norm\2."),
        _regex(r"^bottleneck_layers\.(\d+)\.shortcut\.weight$", r"blocks.\1.shortcut.0.weight"),
        _regex(r"^bottleneck_layers\.(\d+)\.shortcut\.norm\.", r"blocks.\1.shortcut.1."),
        _regex(r"^bottleneck_layers\.(\d+)\.emb_layers\.", r"blocks.\1.emb."),
    ],
}
FIXED_BUFFERS = {"preserve": ("pos_embedding.positional_embedding",)}  # checked, not loaded


def sha256_of(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_official_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The official file's tensors (a bare state dict, or {"aggregation_network": ...})."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign or truncated files
        raise ValueError(f"{path} is not a readable PyTorch state dict: {e}") from e
    if isinstance(payload, dict) and READOUT_KEY in payload:
        payload = payload[READOUT_KEY]
    if not isinstance(payload, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    ):
        raise ValueError(f"{path} does not hold a state dict (names -> tensors)")
    return payload


def check_fixed_buffers(state: dict[str, torch.Tensor], variant: str, path: Path) -> None:
    """The preserve CNN's position buffer must be the fixed sin/cos map we compute."""
    for key in FIXED_BUFFERS.get(variant, ()):
        if key not in state:
            continue
        buffer = state[key].float()
        expected = position_embedding(OFFICIAL_POSITION_SIZE, OFFICIAL_POSITION_SIZE, len(buffer))
        if buffer.shape != expected.shape or not torch.allclose(buffer, expected, atol=1e-5):
            raise ValueError(
                f"{path}: {key} is not the fixed 2-D sin/cos position map of the official "
                "preserve CNN; the file is not an official operator of that layout"
            )


def map_official_state_dict(
    state: dict[str, torch.Tensor], variant: str, net: nn.Module, path: Path
) -> dict[str, torch.Tensor]:
    """Official names -> ours for `variant`, every name and shape checked against `net`.

    A file of another layout is a ValueError listing what did not fit."""
    rules = RULES[variant]
    check_fixed_buffers(state, variant, path)
    fixed = set(FIXED_BUFFERS.get(variant, ()))
    target = net.state_dict()
    mapped, unknown, wrong_shape = {}, [], []
    for key, value in state.items():
        if key in fixed:
            continue
        name = next((n for n in (rule(key) for rule in rules) if n is not None), None)
        if name is None or name not in target:
            unknown.append(key)
            continue
        shape = target[name].shape
        if value.shape != shape and value.numel() == 1 == target[name].numel():
            value = value.reshape(shape)  # the official [1] skip scale is a scalar here
        if value.shape != shape:
            wrong_shape.append(f"{key} {list(value.shape)} (expected {list(shape)})")
            continue
        mapped[name] = value.to(target[name].dtype)
    missing = sorted(set(target) - set(mapped))
    if unknown or wrong_shape or missing:
        official = next(k for k, v in OFFICIAL_VARIANTS.items() if v == variant)
        lines = [f"{path} does not have the official SILO {official!r} layout for this prior:"]
        for what, items in (
            ("unexpected", unknown),
            ("wrong shape", wrong_shape),
            ("missing (our names)", missing),
        ):
            if items:
                lines.append(f"  {what}: {', '.join(items[:6])}" + " ..." * (len(items) > 6))
        lines.append(f"Check --variant ({', '.join(OFFICIAL_VARIANTS)}), --prior and --deg.")
        raise ValueError("\n".join(lines))
    return mapped


def import_operator(
    path: Path, prior_id: str, deg: str, variant: str, out: Path | None = None
) -> Path:
    """`bench import-operator`: an official SILO operator file -> our checkpoint, saved where
    `bench run` looks (default the user cache) under the name a trained one would have; the
    metadata names the source file and its sha256."""
    from bench.priors import load_prior
    from bench.sweep import canonical_spec
    from operators import build_degradation
    from operators.latent.checkpoint import base_metadata, save_checkpoint
    from operators.latent.factory import VARIANTS, build_network, network_architecture
    from operators.latent.lookup import user_cache_folder
    from operators.latent.naming import operator_filename

    if variant not in OFFICIAL_VARIANTS:
        raise ValueError(
            f"unknown --variant {variant!r}; valid: {', '.join(OFFICIAL_VARIANTS)} "
            "(the official cnn, preserve-CNN and readout networks)"
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"operator file {path} does not exist")
    ours = OFFICIAL_VARIANTS[variant]
    prior = load_prior(prior_id)
    op = build_degradation(deg, prior.image_size)
    arch = network_architecture(ours, prior, op)
    if ours == "readout":  # the official sampling runs the bottlenecks without emb (§8)
        arch = {**arch, "timestep_emb": False}
    net = build_network(arch, prior)
    net.load_state_dict(map_official_state_dict(read_official_state_dict(path), ours, net, path))
    metadata = {
        **base_metadata(prior_id, prior, op, arch),
        "sigma_range": [0.0, VARIANTS[ours].sigma_max],
        "sigma_scale": "[-1, 1] images",
        "source": {"file": path.name, "sha256": sha256_of(path), "official_variant": variant},
    }
    target = Path(out or user_cache_folder()) / operator_filename(
        prior_id, canonical_spec(op), ours
    )
    return save_checkpoint(target, net=net, metadata=metadata, optimizer=None, step=0, rng=None)
