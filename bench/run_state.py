"""How far a run folder is, read from disk without running anything: done, failed, claimed."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.claims import live_claims
from bench.store import load_records, quarantine_dir, read_record, record_path


@dataclass
class RunState:
    """Counts of one run folder: records by status, live and stale claims, quarantined files."""

    out: Path
    statuses: Counter = field(default_factory=Counter)
    claimed: int = 0
    stale_claims: int = 0
    quarantined: int = 0
    planned: int | None = None  # cells of the last plan (config.json), when known
    other_records: int = 0  # records of cells outside the last plan (an earlier sweep's)

    @property
    def done(self) -> int:
        """Cells with a record, ok or failed."""
        return sum(self.statuses.values())

    @property
    def failed(self) -> Counter:
        """Failed cells by status (diverged, oom, error)."""
        return Counter({s: n for s, n in self.statuses.items() if s != "ok"})

    def line(self) -> str:
        """One line: '<out>: 40 of 48 cells done (38 ok, 2 failed: diverged 2), 4 claimed ...'."""
        of = f" of {self.planned}" if self.planned is not None else ""
        failed = sum(self.failed.values())
        why = ", ".join(f"{s} {n}" for s, n in sorted(self.failed.items()))
        parts = [
            f"{self.out}: {self.done}{of} cells done ({self.statuses['ok']} ok, {failed} failed"
            + (f": {why})" if why else ")"),
            f"{self.claimed} claimed by running processes",
        ]
        if self.stale_claims:
            parts.append(f"{self.stale_claims} stale claims (taken over by the next run)")
        if self.planned is not None:
            parts.append(f"{max(0, self.planned - self.done - self.claimed)} not started")
        if self.other_records:
            parts.append(f"{self.other_records} records of cells outside the last plan")
        if self.quarantined:
            parts.append(f"{self.quarantined} bad records in {quarantine_dir(self.out)}")
        return ", ".join(parts)


def run_state(out: Path) -> RunState:
    """Read a run folder's records, claims and config.json (bad records get quarantined); with
    the last plan's cell keys in config.json, cells are counted against that plan."""
    out = Path(out)
    records = load_records(out)
    claimed, stale = live_claims(out)
    quarantined = len(list(quarantine_dir(out).glob("*.json")))
    try:
        keys = json.loads((out / "config.json").read_text()).get("cell_keys")
    except (OSError, ValueError):
        keys = None
    planned = set(keys) if isinstance(keys, list) else None
    mine = [r for r in records if planned is None or r.get("key") in planned]
    statuses = Counter(r["status"] for r in mine)
    other = len(records) - len(mine)
    count = None if planned is None else len(planned)
    return RunState(out, statuses, claimed, stale, quarantined, count, other)


def failed_cells(out: Path, keys: list[str]) -> Counter:
    """Statuses of the cells among `keys` whose record is a failure."""
    records = (read_record(record_path(out, key)) for key in keys)
    return Counter(r["status"] for r in records if r is not None and r["status"] != "ok")
