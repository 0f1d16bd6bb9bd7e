"""How a latent operator is named: prior identity, file name, the command that trains it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

VARIANT_ORDER = ("preserve", "noise-cnn", "readout")  # lookup preference: the default first
SELF_SAMPLING_PRIORS = ("gaussian",)  # priors whose own samples are the training data
SUFFIX = ".pt"


def is_folder_id(prior_id: str) -> bool:
    """True when the prior id names a local diffusers folder rather than a registry name or id."""
    from bench.priors import PRIORS
    from bench.priors.diffusers_prior import looks_like_path

    return prior_id not in PRIORS and looks_like_path(prior_id)


def prior_key(prior_id: str) -> str:
    """What two prior ids must share to use one operator: the name, HF id, or folder name."""
    from bench.priors.diffusers_prior import resolve_model

    if is_folder_id(prior_id):
        return "folder:" + Path(prior_id).expanduser().resolve().name
    return resolve_model(prior_id)


def slug(text: str) -> str:
    """A file-name-safe rendering: '/' -> '--', ':' and ',' -> '_', '=' -> '-'."""
    text = text.replace("/", "--").replace(":", "_").replace(",", "_").replace("=", "-")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def operator_filename(prior_id: str, degradation_spec: str, variant: str = "preserve") -> str:
    """'<prior>__<degradation>__<variant>.pt', e.g. 'gaussian__sr4_factor-4__preserve.pt'."""
    prior = slug(prior_key(prior_id).removeprefix("folder:"))
    return f"{prior}__{slug(degradation_spec)}__{variant}{SUFFIX}"


def train_command(
    prior_id: str, degradation_spec: str, out: Path | None = None, variant: str = "preserve"
) -> str:
    """The exact `bench train-operator` command line that makes this operator."""
    args = ["bench", "train-operator", "--prior", prior_id, "--deg", degradation_spec]
    if prior_id not in SELF_SAMPLING_PRIORS:
        args += ["--data", "IMAGE_FOLDER"]
    if variant != "preserve":
        args += ["--variant", variant]
    if out is not None:
        args += ["--out", str(out)]
    return shlex.join(args)
