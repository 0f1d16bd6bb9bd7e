"""Environment settings: one prefix, LATENT_BENCH_, for every variable; old names warn."""

from __future__ import annotations

import os
import warnings

ENV_PREFIX = "LATENT_BENCH_"
# new name -> the name it had before the prefix was unified (still read, with a warning)
DEPRECATED_NAMES = {"LATENT_BENCH_OPERATORS": "LATENT_INVERSE_BENCH_OPERATORS"}


def env_name(setting: str) -> str:
    """The environment variable of a setting: 'weights' -> 'LATENT_BENCH_WEIGHTS'."""
    return ENV_PREFIX + setting.upper()


def read_env(name: str) -> str | None:
    """$name, else its deprecated former name (with a FutureWarning naming the new one)."""
    value = os.environ.get(name)
    old = DEPRECATED_NAMES.get(name)
    if value is None and old and (value := os.environ.get(old)) is not None:
        warnings.warn(f"${old} is deprecated: set ${name} instead", FutureWarning, stacklevel=2)
    return value
