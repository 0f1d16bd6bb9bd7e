"""Pretrained files the tool can use: what needs each, where it is looked for, how to get it."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch.hub
from rich.markup import escape
from rich.table import Table

from bench.console import output_console
from bench.settings import env_name

WEIGHTS_ENV = env_name("weights")
MIRROR_ENV = env_name("weights_from")  # a mirror `bench report` fetches from (as --from)
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
    """One pretrained file: its name, its user, the library's own folder, its source, its hash.

    `sha256` is the full digest where it is known (checked on every fetch); `sha256_prefix`
    the leading hex digits a torch.hub file name carries (`name-<prefix>.pth`, which torchvision
    itself checks with check_hash=True); an entry with neither is fetched unpinned (TLS to the
    canonical host only) and `bench fetch-weights` prints the digest it computed.
    """

    key: str
    filename: str
    used_by: str
    source: str
    home: Callable[[], Path]
    sha256: str | None = None
    sha256_prefix: str | None = None
    shipped: bool = False

    def checksum_problem(self, digest: str) -> str | None:
        """Why `digest` (hex sha256 of a candidate file) is not this file, else None."""
        if self.sha256 and digest != self.sha256:
            return f"sha256 {digest}, expected {self.sha256}"
        if self.sha256_prefix and not digest.startswith(self.sha256_prefix):
            return f"sha256 {digest}, expected one starting {self.sha256_prefix}"
        return None

    def pinned(self) -> str:
        """How a fetched copy is checked: 'sha256', 'sha256 prefix <hex>' or 'unpinned'."""
        if self.sha256:
            return "sha256"
        return f"sha256 prefix {self.sha256_prefix}" if self.sha256_prefix else "unpinned"

    def fetch_command(self) -> str:
        """The command that installs this file."""
        return f"bench fetch-weights {self.key}"

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
        """The `bench fetch-weights` command, and the manual route for a machine without network."""
        if self.shipped:
            return f"ships with the package: {self.source}"
        return (
            f"`{self.fetch_command()}` (from {self.source}, checked: {self.pinned()}); "
            f"without network: copy {self.filename} into a folder F and run "
            f"`{self.fetch_command()} --from F`"
        )


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
        lines.append(f"get it: {entry.how_to_get()}")
        super().__init__("\n".join(lines))


# Checksums (see the entry docstring): the torchvision prefixes are the hash part of the file
# names torchvision loads with check_hash=True; the linear heads' full sha256 were computed from
# the files torchmetrics 1.9.0 and lpips 0.1.4 ship (identical in both). No full sha256 of the
# backbones or of either Inception file is published by the libraries, and torch-fidelity's
# "-6726825d" is inherited from pytorch-fid's file name and never checked, so it is not used.
MANIFEST: dict[str, WeightFile] = {
    entry.key: entry
    for entry in (
        WeightFile(
            "lpips-alex",
            "alexnet-owt-7be5be79.pth",
            "LPIPS alex (torchvision AlexNet backbone)",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            torch_hub_checkpoints,
            sha256_prefix="7be5be79",
        ),
        WeightFile(
            "lpips-vgg",
            "vgg16-397923af.pth",
            "LPIPS vgg (torchvision VGG16 backbone)",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            torch_hub_checkpoints,
            sha256_prefix="397923af",
        ),
        WeightFile(
            "lpips-alex-linear",
            "alex.pth",
            "LPIPS alex (v0.1 linear heads)",
            "pip install torchmetrics",
            torchmetrics_lpips_dir,
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            shipped=True,
        ),
        WeightFile(
            "lpips-vgg-linear",
            "vgg.pth",
            "LPIPS vgg (v0.1 linear heads)",
            "pip install torchmetrics",
            torchmetrics_lpips_dir,
            sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
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


DEFAULT_KEYS = ("lpips-alex", "lpips-vgg", "fid-inception")  # what the default report needs


def report_keys(*, lpips: bool, fid: bool, fid_backend: str, custom_features: bool) -> list[str]:
    """The manifest keys a `bench report` with these options reads."""
    keys = ["lpips-alex", "lpips-vgg"] if lpips else []
    if fid and not custom_features:
        keys.append("fid-inception" if fid_backend == "torchmetrics" else "cleanfid-inception")
    return keys


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
            "default_report": entry.key in DEFAULT_KEYS,
            **entry.status(),
            "checked_by": entry.pinned(),
            "source": entry.source if entry.shipped else entry.how_to_get(),
        }
        for entry in MANIFEST.values()
    ]
    return rows + [{**row, "default_report": False} for row in model_rows()]


def doctor_command(as_json: bool = False) -> int:
    """Print which files and models are present and how to get the others; the exit code is 1
    when a file the default report needs is missing, else 0."""
    rows = doctor_rows()
    blocking = [r["file"] for r in rows if r["default_report"] and r["status"] != "found"]
    if as_json:
        report = {"ok": not blocking, "missing_for_default_report": blocking, "files": rows}
        print(json.dumps(report, indent=2))
        return 1 if blocking else 0
    out = output_console()  # whole paths in logs
    table = Table("what", "file", "used by", "status", "checked by", "path")
    colour = {"found": "green", "missing": "red", "partial": "yellow"}
    for row in rows:
        status = f"[{colour[row['status']]}]{row['status']}[/]"
        default = " [bold](default report)[/bold]" if row["default_report"] else ""
        used_by = escape(row["used_by"]) + default
        checked = row.get("checked_by", "")
        table.add_row(row["what"], row["file"], used_by, status, checked, row["path"])
    out.print(table)
    folder = os.environ.get(WEIGHTS_ENV)
    out.print(f"{WEIGHTS_ENV} = {folder or '(not set)'}; torch hub: {torch_hub_checkpoints()}")
    for row in rows:
        if row["status"] != "found":
            out.print(f"[bold]{row['what']}[/bold]: {escape(row['source'])}", soft_wrap=True)
    if blocking:
        out.print(
            f"[red]missing for the default report:[/red] {', '.join(blocking)}; "
            "`bench fetch-weights` installs them"
        )
    return 1 if blocking else 0
