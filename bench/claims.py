"""Per-cell claim files: N processes (or cluster jobs) on one run folder split its cells.

A claim is `claims/<key>.json`, created with O_EXCL (atomic on local disks and NFSv3+), holding
the holder's pid, host and time. A claim is stale, and is taken over, when its holder's pid is
dead on this host or it is older than the timeout (`BENCH_CLAIM_TIMEOUT_S`, default 6 h: a
holder on another host that was SIGKILLed). Release removes the claim only if it is ours.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

CLAIM_TIMEOUT_S = 6 * 3600.0
TORN_GRACE_S = 10.0  # an empty/torn claim file this old lost its writer mid-create
TIMEOUT_ENV = "BENCH_CLAIM_TIMEOUT_S"


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: process id, host name, claim time (epoch s) and a unique token."""

    pid: int
    host: str
    time: float
    token: str

    @classmethod
    def me(cls) -> Holder:
        """This process, now."""
        return cls(os.getpid(), socket.gethostname(), time.time(), uuid.uuid4().hex)

    def is_mine(self) -> bool:
        """Held by this very process."""
        return self.pid == os.getpid() and self.host == socket.gethostname()

    def is_stale(self, timeout: float) -> bool:
        """Its process is dead on this host, or the claim is older than `timeout` seconds."""
        age = time.time() - self.time
        if age > timeout or (self.pid == 0 and age > TORN_GRACE_S):
            return True
        return self.host == socket.gethostname() and not pid_alive(self.pid)


def claims_dir(out: Path) -> Path:
    """Where the claim files of a run folder live."""
    return Path(out) / "claims"


def claim_path(out: Path, key: str) -> Path:
    """The claim file of one cell."""
    return claims_dir(out) / f"{key}.json"


def claim_timeout() -> float:
    """Seconds after which any claim is stale (`BENCH_CLAIM_TIMEOUT_S`, default 6 h)."""
    return float(os.environ.get(TIMEOUT_ENV, CLAIM_TIMEOUT_S))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(path: Path) -> Holder | None:
    """The holder of a claim file; None when it is gone. A torn claim (a writer killed between
    create and write) reads as pid 0 at its file's mtime: stale after TORN_GRACE_S."""
    try:
        text = path.read_text()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return Holder(0, "", mtime, "")


def _create(path: Path, holder: Holder) -> bool:
    """Create the claim file exclusively; False if it exists already."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(holder), f)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return True


def claim(out: Path, key: str, timeout: float | None = None) -> bool:
    """Claim a cell for this process; True if it is ours now (a stale claim is taken over)."""
    path = claim_path(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _create(path, Holder.me()):
        return True
    seen = read_holder(path)
    if seen is not None and not seen.is_stale(claim_timeout() if timeout is None else timeout):
        return False
    if seen is not None and not _remove_if_unchanged(path, seen):
        return False
    return _create(path, Holder.me())


def _remove_if_unchanged(path: Path, seen: Holder) -> bool:
    """Move the stale claim aside (one taker wins the rename) and drop it if it is still the
    one we judged stale; a fresh claim moved by a race is put back. True if the slot is free."""
    aside = path.with_name(f".stale-{uuid.uuid4().hex}-{path.name}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    moved = read_holder(aside)
    if moved is not None and moved.token != seen.token:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


def release(out: Path, key: str) -> None:
    """Drop this process's claim on a cell (a claim held by anyone else is left alone)."""
    path = claim_path(out, key)
    holder = read_holder(path)
    if holder is not None and holder.is_mine():
        path.unlink(missing_ok=True)


def live_claims(out: Path, timeout: float | None = None) -> tuple[int, int]:
    """(live, stale) claim counts of a run folder."""
    limit = claim_timeout() if timeout is None else timeout
    live = stale = 0
    for path in claims_dir(out).glob("[!.]*.json"):
        holder = read_holder(path)
        if holder is None:
            continue
        if holder.is_stale(limit):
            stale += 1
        else:
            live += 1
    return live, stale
