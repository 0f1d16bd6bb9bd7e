"""`bench fetch-weights` and the report's download policy: fetch, check sha256, rename."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from bench.weights import DEFAULT_KEYS, MANIFEST, MIRROR_ENV, WEIGHTS_ENV, WeightFile

CHUNK = 1 << 20
TIMEOUT_S = 30.0
_TRUE = {"1", "true", "yes", "on"}
ADVICE = {
    "network": "check the network (or proxy); on a machine without network, copy the file into "
    "a folder F (or serve F over http) and run `bench fetch-weights --from F`",
    "http": "check that the URL is right and that the server (or mirror) holds this exact file "
    "name; a mirror is given with --from URL_OR_FOLDER",
    "truncated": "the transfer was cut short: run the same `bench fetch-weights` again",
    "checksum": "the server's file is not the one the metric is defined with, so it was refused; "
    "if it came from a mirror, refresh the mirror's copy from the canonical URL",
    "missing": "put the file under this exact name into the mirror folder",
    "disk": "install into a writable folder with free space (--to DIR or $LATENT_BENCH_WEIGHTS)",
}


class FetchError(RuntimeError):
    """A file could not be installed: names the file, the source, why and what to do."""

    def __init__(self, entry: WeightFile, source: str, kind: str, why: str, dest: Path) -> None:
        """kind: a key of ADVICE (network, http, truncated, checksum, missing, disk)."""
        self.entry, self.source, self.kind = entry, source, kind
        super().__init__(
            f"cannot fetch {entry.filename} ({entry.used_by})\n"
            f"  from: {source}\n"
            f"  why: {why}\n"
            f"  nothing was written to {dest}\n"
            f"  what to do: {ADVICE[kind]}"
        )


@dataclass(frozen=True)
class Fetched:
    """One installed (or already present) file: where, its digest, how it was checked."""

    key: str
    path: Path
    sha256: str | None
    checked_by: str
    fetched: bool


def offline_reason(offline: bool) -> str | None:
    """Why nothing may be downloaded ('--offline', 'HF_HUB_OFFLINE=1'), or None."""
    if offline:
        return "--offline"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return "HF_HUB_OFFLINE=1"
    return None


def source_of(entry: WeightFile, mirror: str | None) -> str:
    """The canonical URL, or the same file name under a mirror URL or folder."""
    if not mirror:
        return entry.source
    if mirror.startswith(("http://", "https://")):
        return f"{mirror.rstrip('/')}/{entry.filename}"
    return str(Path(mirror).expanduser() / entry.filename)


def destination(entry: WeightFile, to: Path | None) -> Path:
    """--to DIR, else $LATENT_BENCH_WEIGHTS, else the folder the entry's library reads."""
    folder = to or (Path(os.environ[WEIGHTS_ENV]) if os.environ.get(WEIGHTS_ENV) else None)
    return (Path(folder).expanduser() if folder else entry.home()) / entry.filename


@contextmanager
def _opened(entry: WeightFile, source: str, dest: Path) -> Iterator[tuple[BinaryIO, int | None]]:
    """(stream, expected byte count or None) of a URL or a mirror folder's file."""
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise FetchError(entry, source, "missing", "no such file in the mirror folder", dest)
        with path.open("rb") as stream:
            yield stream, path.stat().st_size
        return
    request = urllib.request.Request(source, headers={"User-Agent": "latent-inverse-bench"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise FetchError(entry, source, "http", f"HTTP {e.code} {e.reason}", dest) from None
    except (urllib.error.URLError, OSError) as e:
        why = f"no connection: {getattr(e, 'reason', e)}"
        raise FetchError(entry, source, "network", why, dest) from None
    with response:
        length = response.headers.get("Content-Length")
        yield response, int(length) if length and length.isdigit() else None


class _Cut(Exception):
    """Reading the source failed part-way (reset, timeout, incomplete read)."""


def _copy(stream: BinaryIO, out: BinaryIO, progress: Progress, task: int) -> tuple[str, int]:
    """Copy in chunks: (hex sha256, bytes copied); a failed read is a _Cut."""
    digest, count = hashlib.sha256(), 0
    while True:
        try:
            chunk = stream.read(CHUNK)
        except (OSError, http.client.HTTPException) as e:
            raise _Cut(f"{type(e).__name__}: {e}") from None
        if not chunk:
            return digest.hexdigest(), count
        out.write(chunk)
        digest.update(chunk)
        count += len(chunk)
        progress.update(task, advance=len(chunk))


def fetch_file(entry: WeightFile, dest: Path, mirror: str | None, progress: Progress) -> str:
    """Download `entry` into a temp file beside `dest`, verify, rename: its sha256. On any
    failure (or Ctrl-C) the temp file is removed and `dest` is untouched."""
    source = source_of(entry, mirror)
    temp = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            dir=dest.parent, prefix=f".{entry.filename}.", suffix=".part"
        )
        temp = Path(name)
        with os.fdopen(handle, "wb") as out, _opened(entry, source, dest) as (stream, total):
            digest, count = _copy(
                stream, out, progress, progress.add_task(entry.filename, total=total)
            )
        if total is not None and count != total:
            why = f"received {count:,} of {total:,} bytes"
            raise FetchError(entry, source, "truncated", why, dest)
        if problem := entry.checksum_problem(digest):
            raise FetchError(entry, source, "checksum", problem, dest)
        os.replace(temp, dest)
    except _Cut as e:
        raise FetchError(entry, source, "truncated", f"transfer interrupted: {e}", dest) from None
    except OSError as e:
        raise FetchError(entry, source, "disk", f"cannot write: {e}", dest) from None
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)
    return digest


def _progress(console: Console) -> Progress:
    """A progress bar with file name, bytes, speed and time left."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def resolve_keys(keys: list[str]) -> list[WeightFile]:
    """Manifest entries of `keys` (none: what the default report needs); unknown is a ValueError."""
    unknown = [k for k in keys if k not in MANIFEST]
    if unknown:
        raise ValueError(
            f"unknown weight key {unknown[0]!r}; valid: {', '.join(MANIFEST)} "
            "(none: the files the default report needs)"
        )
    return [MANIFEST[k] for k in (keys or DEFAULT_KEYS)]


def fetch_weights(
    entries: list[WeightFile],
    *,
    to: Path | None = None,
    mirror: str | None = None,
    force: bool = False,
    console: Console | None = None,
) -> tuple[list[Fetched], list[FetchError]]:
    """Install each entry that is not already where it would go; the results and the errors."""
    console = console or Console(stderr=True)
    done: list[Fetched] = []
    errors: list[FetchError] = []
    with _progress(console) as progress:
        for entry in entries:
            if entry.shipped:
                done.append(Fetched(entry.key, entry.require(), None, entry.pinned(), False))
                continue
            dest = destination(entry, to)
            present = dest if dest.is_file() else None if to else entry.find()
            if present and not force:
                done.append(Fetched(entry.key, present, None, entry.pinned(), False))
                continue
            try:
                digest = fetch_file(entry, dest, mirror, progress)
            except FetchError as e:
                errors.append(e)
                continue
            done.append(Fetched(entry.key, dest, digest, entry.pinned(), True))
    return done, errors


def fetch_missing(keys: list[str], *, offline: bool, console: Console) -> dict[str, str]:
    """The report's policy: fetch each missing file (from $LATENT_BENCH_WEIGHTS_FROM when set)
    unless offline; {key: why it is still missing} for those it could not get."""
    reason = offline_reason(offline)
    missing: dict[str, str] = {}
    for key in keys:
        entry = MANIFEST[key]
        if entry.find():
            continue
        if reason:
            missing[key] = f"not downloaded ({reason})"
            continue
        _, errors = fetch_weights([entry], mirror=os.environ.get(MIRROR_ENV), console=console)
        if errors:
            missing[key] = f"download failed: {errors[0]}"
            if errors[0].kind == "network":
                reason = "no network"
    return missing


def weights_used(keys: list[str]) -> list[str]:
    """A line per present file of `keys`: its path, full sha256 and how it is pinned, so a
    report says exactly which weights made its numbers."""
    lines = []
    for key in keys:
        entry = MANIFEST[key]
        if (path := entry.find()) is not None:
            with path.open("rb") as stream:
                digest = hashlib.file_digest(stream, "sha256").hexdigest()
            lines.append(f"weights used: {path} (sha256 {digest}; manifest: {entry.pinned()})")
    return lines


def fetch_command(
    keys: list[str], to: Path | None, mirror: str | None, force: bool, console: Console
) -> int:
    """`bench fetch-weights`: install, print where each file went; 1 if any file failed."""
    done, errors = fetch_weights(
        resolve_keys(keys), to=to, mirror=mirror, force=force, console=console
    )
    for item in done:
        if item.fetched:
            unpinned = item.checked_by == "unpinned"
            check = (
                "NOT checked: no sha256 is published for this file; compare it with a trusted copy"
                if unpinned
                else f"checked against the manifest's {item.checked_by}"
            )
            console.print(
                f"installed {item.key}: {item.path} (sha256 {item.sha256}; {check})",
                soft_wrap=True,
                highlight=False,
            )
        else:
            console.print(f"present {item.key}: {item.path}", soft_wrap=True, highlight=False)
    for error in errors:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True, highlight=False)
    searched = {e.home() for e in MANIFEST.values()} | (
        {Path(os.environ[WEIGHTS_ENV]).expanduser()} if os.environ.get(WEIGHTS_ENV) else set()
    )
    if to is not None and Path(to).expanduser() not in searched and done:
        console.print(
            f"note: the metrics look in their libraries' folders and ${WEIGHTS_ENV}; "
            f"set {WEIGHTS_ENV}={to} for them to find these files",
            soft_wrap=True,
            highlight=False,
        )
    return 1 if errors else 0
