"""Finding the trained operator of a (prior, degradation): folders, file names, the error."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from bench.priors.base import Prior
from bench.settings import env_name, read_env
from bench.sweep import canonical_spec
from operators.base import Degradation
from operators.latent.checkpoint import load_operator
from operators.latent.naming import VARIANT_ORDER, operator_filename, train_command
from operators.latent.operator import LearnedLatentOperator

SHIPPED = Path(__file__).resolve().parent.parent / "shipped"
FOLDERS_ENV = env_name("operators")  # os.pathsep-separated; reaches worker processes
_folders: ContextVar[list[Path] | None] = ContextVar("operator_folders", default=None)
_loaded: dict[tuple, tuple[LearnedLatentOperator, object]] = {}


def user_cache_folder() -> Path:
    """$XDG_CACHE_HOME (or ~/.cache) / latent-inverse-bench / operators."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latent-inverse-bench" / "operators"


def default_operator_folders() -> list[Path]:
    """Where operators are looked up by default: the user cache, then the package's shipped ones."""
    return [user_cache_folder(), SHIPPED]


@contextmanager
def using_operator_folders(folders: list[Path] | None) -> Iterator[list[Path]]:
    """Look operators up in folders (e.g. `bench run --operators DIR`) inside the block."""
    chosen = [Path(f) for f in folders] if folders else default_operator_folders()
    token = _folders.set(chosen)
    try:
        yield chosen
    finally:
        _folders.reset(token)


def active_operator_folders() -> list[Path]:
    """using_operator_folders' folders, else $LATENT_BENCH_OPERATORS, else defaults."""
    chosen = _folders.get()
    if chosen:
        return chosen
    env = [Path(p) for p in (read_env(FOLDERS_ENV) or "").split(os.pathsep) if p]
    return env or default_operator_folders()


def find_operator(
    prior_name: str,
    degradation_spec: str,
    folders: list[Path],
    variant: str | None = None,
) -> Path:
    """The first existing checkpoint for (prior, degradation) in folders, variants in order.

    Missing: a FileNotFoundError naming the folders searched and the exact train command.
    """
    variants = (variant,) if variant else VARIANT_ORDER
    for folder in folders:
        for v in variants:
            path = Path(folder) / operator_filename(prior_name, degradation_spec, v)
            if path.is_file():
                return path
    first = Path(folders[0]) if folders else user_cache_folder()
    target = first / operator_filename(prior_name, degradation_spec, variant or "preserve")
    searched = "\n".join(
        f"  - {Path(f) / operator_filename(prior_name, degradation_spec, v)}"
        for f in folders
        for v in variants
    )
    cmd = train_command(prior_name, degradation_spec, target, variant or "preserve")
    note = (
        "\n(IMAGE_FOLDER: a folder of training photos, e.g. FFHQ or LSDIR images of any size)"
        if "IMAGE_FOLDER" in cmd
        else ""
    )
    raise FileNotFoundError(
        f"no trained latent operator H for prior {prior_name!r} and degradation "
        f"{degradation_spec!r}. Searched:\n{searched}\nTrain it with:\n  {cmd}{note}"
    )


def resolve_trained_operator(
    prior: Prior, op: Degradation, folders: list[Path] | None = None
) -> LearnedLatentOperator:
    """find_operator + load_operator for (prior.name, op), loaded once per file and UNet."""
    path = find_operator(prior.name, canonical_spec(op), folders or active_operator_folders())
    unet = prior.modules().get("unet")
    key = (str(path.resolve()), path.stat().st_mtime_ns, canonical_spec(op), id(unet))
    cached = _loaded.get(key)
    if cached is None or cached[1] is not unet:
        cached = (load_operator(path, prior, op), unet)
        _loaded[key] = cached
    return cached[0].bind(op)
