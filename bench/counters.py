"""Cost counters: forward and backward calls of each network during one solve (DESIGN.md §3)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_active: ContextVar[Counter | None] = ContextVar("active_counter", default=None)

COUNTED_CALLS = ("unet", "dec", "enc", "op")
CALL_COUNT_COLUMNS = [f"{n}_{d}" for n in COUNTED_CALLS for d in ("fwd", "bwd")] + ["opt_iters"]


def tally(name: str, n: int = 1) -> None:
    """Add n to counter `name` of the solve being counted (no-op outside `counting()`)."""
    counts = _active.get()
    if counts is not None:
        counts[name] += n


@contextmanager
def counting() -> Iterator[Counter]:
    """Collect every tally made inside the block into a fresh Counter."""
    counts: Counter = Counter()
    token = _active.set(counts)
    try:
        yield counts
    finally:
        _active.reset(token)


def counted(name: str, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """fn with `{name}_fwd` per call and `{name}_bwd` per backward pass through its output."""

    def wrapper(*args, **kwargs) -> torch.Tensor:
        tally(f"{name}_fwd")
        out = fn(*args, **kwargs)
        if out.requires_grad:
            out.register_hook(lambda grad: tally(f"{name}_bwd"))
        return out

    return wrapper


class CountedPrior:
    """A view of a prior whose eps, decode and encode are counted as unet, dec and enc calls."""

    def __init__(self, prior) -> None:
        self._prior = prior
        self.eps = counted("unet", prior.eps)
        self.decode = counted("dec", prior.decode)
        self.encode = counted("enc", prior.encode)

    def __getattr__(self, name: str):
        return getattr(self._prior, name)
