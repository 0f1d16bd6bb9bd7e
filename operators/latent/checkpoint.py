"""The operator checkpoint: one file with weights, metadata, optimizer and RNG (DESIGN.md §3)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from bench.priors.base import Prior
from bench.sweep import CODE_VERSION, canonical_spec
from operators.base import Degradation
from operators.latent.factory import build_network
from operators.latent.naming import is_folder_id, prior_key, train_command
from operators.latent.operator import LearnedLatentOperator

FORMAT = "latent-inverse-bench/latent-operator/1"


def prior_identity(prior_id: str) -> dict:
    """The prior as given, its comparison key and, for a local folder, the folder's name."""
    folder = Path(prior_id).expanduser().resolve().name if is_folder_id(prior_id) else None
    return {"prior_id": prior_id, "prior_key": prior_key(prior_id), "prior_folder_name": folder}


def degradation_identity(op: Degradation) -> dict:
    """The degradation's canonical spec, name and resolved parameters."""
    return {
        "degradation": canonical_spec(op),
        "degradation_name": op.name,
        "degradation_params": dict(op.params),
    }


def base_metadata(prior_id: str, prior: Prior, op: Degradation, arch: dict) -> dict:
    """The identity part of a checkpoint's metadata (training fills in the rest)."""
    return {
        "format": FORMAT,
        **prior_identity(prior_id),
        **degradation_identity(op),
        "image_size": prior.image_size,
        "latent_shape": list(prior.latent_shape),
        "variant": arch["variant"],
        "architecture": arch,
        "code_version": CODE_VERSION,
    }


def save_checkpoint(
    path: Path,
    *,
    net: nn.Module,
    metadata: dict,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    rng: torch.Generator | None,
) -> Path:
    """torch.save {state_dict, metadata, optimizer, step, rng} to a temp file, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "metadata": metadata,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "step": step,
        "rng": None if rng is None else {"generator": rng.get_state()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export_for_shipping(path: Path, out: Path) -> Path:
    """A weights-only copy of a checkpoint (no optimizer or RNG state, fp16 tensors) for the
    package's shipped operators; loading upcasts to the network's dtype. Not resumable."""
    payload = read_checkpoint(path)
    slim = {
        "state_dict": {
            k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()
        },
        "metadata": {**payload["metadata"], "exported_fp16": True},
        "optimizer": None,
        "step": payload["step"],
        "rng": None,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    torch.save(slim, tmp)
    os.replace(tmp, out)
    return out


def read_checkpoint(path: Path) -> dict:
    """The checkpoint dict (tensors on the CPU); a ValueError if it is not an operator file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"operator checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path} is not a readable operator checkpoint: {e}") from e
    if not isinstance(payload, dict) or payload.get("metadata", {}).get("format") != FORMAT:
        raise ValueError(f"{path} is not a latent operator checkpoint (format {FORMAT!r})")
    return payload


def mismatches(metadata: dict, prior_id: str, prior: Prior, op: Degradation) -> list[str]:
    """What differs between a checkpoint's metadata and the run (prior, degradation, shapes)."""
    found = []
    run_key = prior_key(prior_id)
    if metadata["prior_key"] != run_key:
        found.append(f"prior: checkpoint {metadata['prior_id']!r}, run {prior_id!r}")
    spec = canonical_spec(op)
    if metadata["degradation"] != spec:
        found.append(f"degradation: checkpoint {metadata['degradation']!r}, run {spec!r}")
    if metadata["latent_shape"] != list(prior.latent_shape):
        found.append(
            f"latent shape: checkpoint {metadata['latent_shape']}, run {list(prior.latent_shape)}"
        )
    return found


def check_metadata(
    metadata: dict, prior_id: str, prior: Prior, op: Degradation, path: Path
) -> None:
    """Raise ValueError naming every mismatch and the command that trains the right operator."""
    found = mismatches(metadata, prior_id, prior, op)
    if found:
        raise ValueError(
            f"latent operator {path} does not fit this run:\n  "
            + "\n  ".join(found)
            + "\nTrain a matching one with:\n  "
            + train_command(prior_id, canonical_spec(op), variant=metadata["variant"])
        )


def load_operator(path: Path, prior: Prior, op: Degradation) -> LearnedLatentOperator:
    """The frozen operator in path after checking it was trained for (prior.name, op).

    A seeded op's mask is bound at once; SILO binds the seeded op of each solve again.
    """
    payload = read_checkpoint(path)
    metadata = payload["metadata"]
    check_metadata(metadata, prior.name, prior, op, Path(path))
    net = build_network(metadata["architecture"], prior)
    net.load_state_dict(payload["state_dict"])
    net.to(prior.device)
    operator = LearnedLatentOperator(net, metadata, prior.modules().get("unet"))
    return operator.bind(op) if getattr(op, "mask", None) is not None else operator
