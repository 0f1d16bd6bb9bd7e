"""Honest timing (DESIGN.md §5): precision flags, synchronized wall time, peak memory, env."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def configure_precision(precision: str) -> torch.dtype:
    """Set the TF32 flags for `precision` and return the dtype priors should load in.

    fp32 (default): TF32 off for matmul and cuDNN and matmul precision "highest", so FP32 means
    FP32 (the official codes often silently run TF32 or fp16; ecosystem.md §0 #10).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return torch.bfloat16 if precision == "bf16" else torch.float32


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall time covers the work, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _RssSampler(threading.Thread):
    """Samples RSS every few milliseconds and keeps the maximum (CPU peak memory of a solve)."""

    def __init__(self, interval_s: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.interval_s, self.peak, self._done = interval_s, _rss_bytes(), threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, _rss_bytes())


@dataclass
class Timing:
    """Wall time of the timed region and its peak memory (CUDA allocated, or process RSS)."""

    seconds: float = 0.0
    peak_mem_mb: float = 0.0
    memory_kind: str = ""


@contextmanager
def timed(device: torch.device) -> Iterator[Timing]:
    """Synchronized perf_counter timing with per-region peak memory."""
    result = Timing()
    sampler = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        sampler = _RssSampler()
        sampler.start()
    synchronize(device)
    start = time.perf_counter()
    try:
        yield result
    finally:
        synchronize(device)
        result.seconds = time.perf_counter() - start
        if device.type == "cuda":
            result.peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20
            result.memory_kind = "cuda_max_allocated"
        elif sampler is not None:
            result.peak_mem_mb = sampler.stop() / 2**20
            result.memory_kind = "process_rss"


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit of the code that ran ('unknown' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device, dtype: torch.dtype) -> dict:
    """What every record carries about where and how it ran."""
    import diffusers
    import kornia

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "device": str(device),
        "device_name": name or platform.machine(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "kornia": kornia.__version__,  # SILO's differentiable JPEG differs between versions
        "cuda": torch.version.cuda,
        "dtype": str(dtype).removeprefix("torch."),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "matmul_precision": torch.get_float32_matmul_precision(),
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        "python": platform.python_version(),
        "git_sha": git_sha(),
    }
