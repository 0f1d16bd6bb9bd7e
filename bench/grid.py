"""Hyperparameter grids: lists, log ranges and multiples of the official value, expanded to rows."""

from __future__ import annotations

import itertools
import re

LOG_RANGE = re.compile(r"log\(\s*([^,()]+),\s*([^,()]+),\s*([^,()]+)\)")
RELATIVE = "*"  # '*3' = 3 x the solver's default for the degradation (its official value)


def is_grid(value: str) -> bool:
    """A grid value: '[a,b,...]' or 'log(a,b,n)', optionally as multiples ('*[..]', '*log(..)')."""
    body = value.strip().removeprefix(RELATIVE).strip()
    return body.startswith("[") or body.startswith("log(")


def log_values(low: float, high: float, n: int) -> list[float]:
    """n log-spaced values from low to high, both included (n = 1: low)."""
    if low <= 0 or high <= 0 or n < 1:
        raise ValueError(f"log(a,b,n) needs a > 0, b > 0 and n >= 1, got log({low},{high},{n})")
    if n == 1:
        return [low]
    return [low * (high / low) ** (i / (n - 1)) for i in range(n)]


def point_text(value: float) -> str:
    """A grid value as written in labels (3 significant digits); the label parses back to it."""
    return f"{value:.3g}"


def expand_value(value: str) -> list[str]:
    """'[0.5,1]' -> ['0.5','1']; 'log(0.1,10,3)' -> ['0.1','1','10']; '*log(..)' -> ['*0.1',..];
    anything else is one value."""
    text = value.strip()
    if not is_grid(text):
        return [text]
    prefix = RELATIVE if text.startswith(RELATIVE) else ""
    body = text.removeprefix(RELATIVE).strip()
    if body.startswith("["):
        if not body.endswith("]") or len(body) < 3:
            raise ValueError(f"grid {value!r}: expected a list like [0.5,1,2]")
        items = [v.strip() for v in body[1:-1].split(",")]
        if not all(items):
            raise ValueError(f"grid {value!r} has an empty item")
        return [prefix + v for v in items]
    match = LOG_RANGE.fullmatch(body)
    if match is None:
        raise ValueError(f"grid {value!r}: expected log(LOW,HIGH,N), e.g. log(0.1,10,5)")
    try:
        low, high, n = float(match[1]), float(match[2]), int(match[3])
    except ValueError:
        raise ValueError(f"grid {value!r}: LOW and HIGH are numbers, N an integer") from None
    return [prefix + point_text(v) for v in log_values(low, high, n)]


def expand_overrides(overrides: dict[str, str]) -> list[dict[str, str]]:
    """The Cartesian product of every grid value: {'a': '[1,2]', 'b': '3'} -> 2 points."""
    names = list(overrides)
    values = [expand_value(overrides[n]) for n in names]
    return [dict(zip(names, point, strict=True)) for point in itertools.product(*values)]


def resolve_value(value: str, default: object, coerce) -> object:
    """A point's value: '*k' is k times the default (which must be a number), else `coerce`."""
    if not value.startswith(RELATIVE):
        return coerce(value, default)
    if isinstance(default, bool) or not isinstance(default, int | float):
        raise ValueError(f"'{value}' multiplies the default, which is {default!r}, not a number")
    scaled = float(value[len(RELATIVE) :]) * default
    return round(scaled) if isinstance(default, int) else scaled


def auto_grid(name: str, step_sizes: dict[str, tuple[float, float, int]]) -> list[str]:
    """`--grid auto` items for one solver: each declared step size over its default log range
    of multiples of the official value, e.g. ['ldps.zeta=*log(0.1,10,5)']."""
    return [f"{name}.{k}={RELATIVE}log({lo:g},{hi:g},{n})" for k, (lo, hi, n) in step_sizes.items()]
