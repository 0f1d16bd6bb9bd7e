"""Honest timing (DESIGN.md §5): precision flags, synchronized wall time, peak memory, env."""

from __future__ import annotations

import platform
import subprocess
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


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (Linux: VmHWM); False where unsupported.

    The kernel keeps the peak, so a solve's CPU peak memory costs nothing while it runs (a
    sampling thread woke every few ms and slowed the solve it measured).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set size since the last reset (Linux /proc VmHWM; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass
class Timing:
    """Wall time of the timed region, the process's CPU time in it (all threads; on a shared
    machine the wall time also counts other processes' turns, the CPU time does not) and its
    peak memory (CUDA allocated, or process RSS)."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_mem_mb: float = 0.0
    memory_kind: str = ""


@contextmanager
def timed(device: torch.device) -> Iterator[Timing]:
    """Synchronized perf_counter timing with per-region peak memory."""
    result = Timing()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset = reset_peak_rss()
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        synchronize(device)
        result.seconds = time.perf_counter() - start
        result.cpu_seconds = time.process_time() - cpu_start
        if device.type == "cuda":
            result.peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20
            result.memory_kind = "cuda_max_allocated"
        else:
            result.peak_mem_mb = peak_rss_bytes() / 2**20
            result.memory_kind = "process_peak_rss" if reset else "process_peak_rss_lifetime"


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
