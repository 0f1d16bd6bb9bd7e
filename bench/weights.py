"""Pretrained files the tool can use: what needs each, where it is looked for, how to get it."""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch.hub
from rich.table import Table

from bench.console import output_console

WEIGHTS_ENV = "LATENT_BENCH_WEIGHTS"
# clean-fid hard-codes this folder for its TorchScript Inception (cleanfid/features.py).
CLEANFID_DIR = Path("./" if platform.system() == "Windows" else "/tmp")


def torch_hub_checkpoints() -> Path:
    """Where torch.hub (torchvision, torch-fidelity) caches files: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchmetrics_lpips_dir() -> Path:
    """The folder of the LPIPS linear heads that ship inside torchmetrics."""
    import torchmetrics.functional.image.lpips as module

    return Path(module.__file__).parent / "lpips_models"


def cleanfid_dir() -> Path:
    """The folder clean-fid loads (and would download) its Inception from."""
    return CLEANFID_DIR


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file: its name, its user, the library's own folder and its source."""

    key: str
    filename: str
    used_by: str
    source: str
    home: Callable[[], Path]
    shipped: bool = False

    def search_paths(self) -> list[Path]:
        """The library's own location, then $LATENT_BENCH_WEIGHTS/<file> when that is set."""
        paths = [self.home() / self.filename]
        folder = os.environ.get(WEIGHTS_ENV)
        if folder and not self.shipped:
            paths.append(Path(folder).expanduser() / self.filename)
        return paths

    def find(self) -> Path | None:
        """The first existing search path, else None."""
        return next((p for p in self.search_paths() if p.is_file()), None)

    def require(self) -> Path:
        """The resolved path; WeightsMissing (never a download) when the file is absent."""
        path = self.find()
        if path is None:
            raise WeightsMissing(self)
        return path

    def status(self) -> dict[str, str]:
        """{'status': 'found' | 'missing', 'path': the resolved path, else where it belongs}."""
        path = self.find()
        return {
            "status": "found" if path else "missing",
            "path": str(path or self.search_paths()[0]),
        }

    def how_to_get(self) -> str:
        """The command that fetches the file on a connected machine and where to put it."""
        if self.shipped:
            return f"ships with the package: {self.source}"
        folders = f"{self.home()}/" + (
            f" or ${WEIGHTS_ENV}/"
            if os.environ.get(WEIGHTS_ENV)
            else f" (or into a folder you name in ${WEIGHTS_ENV})"
        )
        return f"curl -L -o {self.filename} {self.source}  # then copy it into {folders}"


class WeightsMissing(FileNotFoundError):
    """A pretrained file is absent: carries its name, the paths searched and its source."""

    def __init__(self, entry: WeightFile) -> None:
        """Build the message that names the file, what needs it, where it was looked for."""
        self.entry = entry
        self.file_name = entry.filename
        self.searched = entry.search_paths()
        self.source = entry.source
        lines = [f"{entry.used_by}: missing {entry.filename}", "searched:"]
        lines += [f"  - {p}" for p in self.searched]
        if not os.environ.get(WEIGHTS_ENV) and not entry.shipped:
            lines.append(f"  - ${WEIGHTS_ENV}/{entry.filename} ({WEIGHTS_ENV} is not set)")
        lines.append(f"get it on a machine with network access: {entry.how_to_get()}")
        super().__init__("\n".join(lines))


MANIFEST: dict[str, WeightFile] = {
    entry.key: entry
    for entry in (
        WeightFile(
            "lpips-alex",
            "alexnet-owt-7be5be79.pth",
            "LPIPS alex (torchvision AlexNet backbone)",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            torch_hub_checkpoints,
        ),
        WeightFile(
            "lpips-vgg",
            "vgg16-397923af.pth",
            "LPIPS vgg (torchvision VGG16 backbone)",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            torch_hub_checkpoints,
        ),
        WeightFile(
            "lpips-alex-linear",
            "alex.pth",
            "LPIPS alex (v0.1 linear heads)",
            "pip install torchmetrics",
            torchmetrics_lpips_dir,
            shipped=True,
        ),
        WeightFile(
            "lpips-vgg-linear",
            "vgg.pth",
            "LPIPS vgg (v0.1 linear heads)",
            "pip install torchmetrics",
            torchmetrics_lpips_dir,
            shipped=True,
        ),
        WeightFile(
            "fid-inception",
            "weights-inception-2015-12-05-6726825d.pth",
            "FID/KID, torchmetrics backend (torch-fidelity InceptionV3)",
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
            torch_hub_checkpoints,
        ),
        WeightFile(
            "cleanfid-inception",
            "inception-2015-12-05.pt",
            "FID/KID, clean-fid backend (TorchScript InceptionV3)",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
            "inception-2015-12-05.pt",
            cleanfid_dir,
        ),
    )
}


def lpips_backbone(net: str) -> WeightFile:
    """The backbone file LPIPS with `net` (alex | vgg) needs."""
    if f"lpips-{net}" not in MANIFEST:
        raise ValueError(f"unknown LPIPS net {net!r}; valid: alex, vgg")
    return MANIFEST[f"lpips-{net}"]


@contextlib.contextmanager
def torch_hub_serving(path: Path) -> Iterator[None]:
    """Make torch.hub find `path` under its checkpoints folder (via a temporary TORCH_HOME)."""
    if path.parent == torch_hub_checkpoints():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as home:
        link = Path(home) / "hub" / "checkpoints" / path.name
        link.parent.mkdir(parents=True)
        link.symlink_to(path.resolve())
        before = os.environ.get("TORCH_HOME")
        os.environ["TORCH_HOME"] = home
        try:
            yield
        finally:
            if before is None:
                del os.environ["TORCH_HOME"]
            else:
                os.environ["TORCH_HOME"] = before


def model_rows() -> list[dict]:
    """The diffusers aliases (sd15, rv51): found or missing in the Hugging Face cache (offline)."""
    from huggingface_hub import constants, try_to_load_from_cache

    from bench.priors.diffusers_prior import ALIASES, COMPONENTS, download_command

    cache = constants.HF_HUB_CACHE
    rows = []
    for alias, repo_id in ALIASES.items():
        index = try_to_load_from_cache(repo_id, "model_index.json", cache_dir=cache)
        snapshot = Path(index).parent if isinstance(index, str) else None
        absent = [c for c in COMPONENTS if snapshot is None or not (snapshot / c).is_dir()]
        status = "found" if not absent else "missing" if snapshot is None else "partial"
        rows.append(
            {
                "what": alias,
                "file": repo_id,
                "used_by": f"--prior {alias}"
                + (f" (missing: {', '.join(absent)})" if status == "partial" else ""),
                "status": status,
                "path": str(snapshot or cache),
                "source": download_command(repo_id),
            }
        )
    return rows


def doctor_rows() -> list[dict]:
    """Every pretrained file and model the tool can use, found or missing, with its source."""
    rows = [
        {
            "what": entry.key,
            "file": entry.filename,
            "used_by": entry.used_by,
            **entry.status(),
            "source": entry.source if entry.shipped else entry.how_to_get(),
        }
        for entry in MANIFEST.values()
    ]
    return rows + model_rows()


def doctor_command() -> None:
    """Print which pretrained files and models are present, and how to get the missing ones."""
    out = output_console()
    table = Table("what", "file", "used by", "status", "path")
    colour = {"found": "green", "missing": "red", "partial": "yellow"}
    rows = doctor_rows()
    for row in rows:
        status = f"[{colour[row['status']]}]{row['status']}[/]"
        table.add_row(row["what"], row["file"], row["used_by"], status, row["path"])
    out.print(table)
    folder = os.environ.get(WEIGHTS_ENV)
    out.print(f"{WEIGHTS_ENV} = {folder or '(not set)'}; torch hub: {torch_hub_checkpoints()}")
    for row in rows:
        if row["status"] != "found":
            out.print(f"[bold]{row['what']}[/bold]: {row['source']}", soft_wrap=True)
