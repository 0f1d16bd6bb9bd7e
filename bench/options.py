"""The options of `bench run` as a plain dataclass (light: `bench --help` imports it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.runspec import RunSpec


@dataclass
class RunOptions:
    """The options of `bench run` (also the keys a --config file may set)."""

    solvers: str = ""
    deg: str = "inpaint"
    prior: str = "embedded"
    data: str | None = None
    images: str | None = None
    sigma: str = "0.01"
    seeds: str = "0"
    steps: int | None = None
    set: list[str] = field(default_factory=list)
    batch: int | None = None
    prompt: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    out: str = "runs/latest"
    workers: int = 1
    executor: str = "local"
    save_images: bool = True
    operators: list[str] = field(default_factory=list)
    force: bool = False
    retry_failed: bool = False
    preset: str | None = None  # its option values are merged by the CLI (bench.cli.merge_config)
    tuned: list[dict] = field(default_factory=list)  # chosen points (tuned.toml, `bench tune`)

    def spec(self) -> RunSpec:
        """What a worker needs to rebuild the context."""
        from bench.runspec import RunSpec

        return RunSpec(
            self.prior,
            self.prompt,
            self.device,
            self.precision,
            self.data,
            Path(self.out),
            self.save_images,
            tuple(self.operators),
        )
