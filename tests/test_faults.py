"""Fault injection: kills, SIGTERM, concurrent processes, full and read-only disks, bad records
and bad options. Nothing may be lost, solved twice, torn, or reported as a traceback."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from faults import TALLY, bench_process, logged_solver, solves, tmpfs
from test_driver import stable
from typer.testing import CliRunner

from bench.claims import claim, claim_path, release
from bench.cli import app
from bench.store import remove_orphan_temps, write_record
from solvers import registry

runner = CliRunner()
SWEEP = ["--prior", "gaussian", "--solvers", "ldps", "--deg", "sr4,inpaint", "--steps", "10"]
SWEEP += ["--no-save-images"]
FAST = [*SWEEP, "--images", "6"]  # 12 cells
LONG = [*SWEEP, "--images", "12", "--sigma", "0.01,0.05"]  # 48 cells


def bench(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def record_files(out: Path) -> list[Path]:
    return sorted((out / "records").glob("[!.]*.json"))


def all_parse(out: Path) -> bool:
    """No torn record: every record file is complete JSON naming its own key."""
    return all(json.loads(p.read_text())["key"] == p.stem for p in record_files(out))


def fresh_csv(out: Path) -> pd.DataFrame:
    """per_image.csv rebuilt from the records (processes that ended early wrote partial ones)."""
    from bench.store import write_per_image_csv

    return stable(pd.read_csv(write_per_image_csv(out)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Uninterrupted single-process runs of the sweeps, computed lazily."""
    root, frames = tmp_path_factory.mktemp("reference"), {}

    def get(name: str) -> pd.DataFrame:
        if name not in frames:
            args = FAST if name == "fast" else LONG
            result = bench("run", *args, "--out", root / name)
            assert result.exit_code == 0, result.output
            frames[name] = stable(pd.read_csv(root / name / "per_image.csv"))
        return frames[name]

    return get


def count_lost(out: Path, expected: pd.DataFrame) -> int:
    ok = {p.stem for p in record_files(out) if json.loads(p.read_text())["status"] == "ok"}
    return len(set(expected.key) - ok)


# --- claims -------------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_claim(out: Path, key: str, pid: int, host: str, age_s: float) -> Path:
    path = claim_path(out, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host, "time": time.time() - age_s, "token": "t"}
    path.write_text(json.dumps(holder))
    return path


def test_a_claim_is_exclusive_across_processes_until_released(tmp_path):
    probe = f"from bench.claims import claim; print(claim({str(tmp_path)!r}, 'k'))"
    other = [sys.executable, "-c", probe]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert claim(tmp_path, "k")
    assert not claim(tmp_path, "k")  # held, by a live process (this one)
    assert subprocess.run(other, capture_output=True, text=True, env=env).stdout.strip() == "False"
    release(tmp_path, "k")
    assert not claim_path(tmp_path, "k").exists()
    assert subprocess.run(other, capture_output=True, text=True, env=env).stdout.strip() == "True"
    assert claim(tmp_path, "k")  # the other process died holding it: taken over


def test_stale_claims_are_taken_over_and_live_ones_are_not(tmp_path):
    host = socket.gethostname()
    write_claim(tmp_path, "dead", dead_pid(), host, age_s=0)
    assert claim(tmp_path, "dead")
    write_claim(tmp_path, "alive", os.getppid(), host, age_s=60)
    assert not claim(tmp_path, "alive")
    assert claim(tmp_path, "alive", timeout=30)  # older than the timeout
    write_claim(tmp_path, "remote", 1, "another-node", age_s=60)  # pid unknowable there
    assert not claim(tmp_path, "remote")
    assert claim(tmp_path, "remote", timeout=30)
    torn = claim_path(tmp_path, "torn")
    torn.touch()  # a holder killed between create and write
    assert not claim(tmp_path, "torn")
    os.utime(torn, (time.time() - 60, time.time() - 60))
    assert claim(tmp_path, "torn")
    other = write_claim(tmp_path, "theirs", os.getppid(), host, age_s=0)
    release(tmp_path, "theirs")
    assert other.exists()  # release only drops this process's own claims


# --- small disk rules ---------------------------------------------------------------------


def test_records_get_the_umask_mode_like_any_file(tmp_path):
    previous = os.umask(0o027)
    try:
        path = write_record(tmp_path, {"key": "k", "status": "ok"})
        (tmp_path / "plain").write_text("x")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_orphan_temp_files_are_removed_and_live_ones_kept(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    host = socket.gethostname()
    orphan = records / f".tmp-{dead_pid()}@{host}-0123abcd-k.json"
    live = records / f".tmp-{os.getpid()}@{host}-0123abcd-k.json"
    old_style = records / ".tmp-x8y2k1.json"  # mkstemp name of an earlier version
    for path in (orphan, live, old_style):
        path.write_text("{")
    os.utime(old_style, (time.time() - 60, time.time() - 60))
    assert remove_orphan_temps(tmp_path) == 2
    assert [p.name for p in records.iterdir()] == [live.name]


# --- bad records and bad options ----------------------------------------------------------


def test_garbage_and_torn_records_are_quarantined_named_and_rerun(tmp_path, reference):
    expected = reference("fast")
    out = tmp_path / "run"
    assert bench("run", *FAST, "--out", out).exit_code == 0
    torn = record_files(out)[0]
    bad = {
        torn.name: torn.read_bytes()[:40],
        "garbage.json": b"{not json",
        "list.json": b"[1, 2]",
        "binary.json": bytes(range(256)),
    }
    for name, content in bad.items():
        (out / "records" / name).write_bytes(content)
    result = bench("run", *FAST, "--out", out)
    TALLY["tried"] += len(bad)
    named = [name for name in bad if f"bad record {out / 'records' / name}" in result.output]
    TALLY["rejected"] += len(named) if result.exit_code == 0 else 0
    assert result.exit_code == 0, result.output
    assert sorted(named) == sorted(bad)
    assert "11 already done, 1 to run" in result.output  # the torn cell is not done
    quarantined = {p.name: p.read_bytes() for p in (out / "records" / "quarantine").iterdir()}
    assert quarantined == bad  # moved aside byte for byte, never deleted
    pd.testing.assert_frame_equal(stable(pd.read_csv(out / "per_image.csv")), expected)
    (out / "records" / "stray.json").write_text("")
    TALLY["tried"] += 1
    report = bench("report", out, "--no-lpips", "--no-fid", "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    assert f"bad record {out / 'records' / 'stray.json'}" in report.output
    TALLY["rejected"] += 1
    assert "12 of 12 cells done (12 ok, 0 failed)" in report.output


BAD_OPTIONS = [
    (["--sigma", "nan"], "--sigma nan", "finite numbers >= 0"),
    (["--sigma", "inf"], "--sigma inf", "finite numbers >= 0"),
    (["--sigma", "-0.1"], "--sigma -0.1", "finite numbers >= 0"),
    (["--sigma", "abc"], "--sigma 'abc' is not a number", "finite numbers >= 0"),
    (["--steps", "0"], "--steps 0", "integers >= 1"),
    (["--steps", "100000"], "--steps 100000", "1..1000 (the prior's training steps)"),
    (["--set", "ldps.steps=5000"], "steps=5000 of solver ldps", "1..1000"),
    (["--steps", "abc"], "'--steps'", "integer"),
    (["--images", "0"], "--images 0", "N >= 1"),
    (["--images", "5:5"], "--images 5:5", "N >= 1"),
    (["--seeds", "x"], "--seeds 'x'", "integers >= 0"),
    (["--config", "missing.toml"], "'--config'", "does not exist"),
    (["--config", "@bad_toml"], "--config", "line 1"),
    (["--config", "@batch_zero"], "--batch 0", "integers >= 1"),
    (["--config", "@steps_text"], "option 'steps'", "integer"),
    (["--out", "@a_file"], "is a file", "valid: a folder"),
]


@pytest.mark.parametrize(("args", "names", "valid"), BAD_OPTIONS)
def test_every_invalid_option_is_exit_2_naming_it_before_any_solve(tmp_path, args, names, valid):
    files = {
        "@bad_toml": ("bad.toml", "steps = = 3\n"),
        "@batch_zero": ("zero.toml", "batch = 0\n"),
        "@steps_text": ("text.yaml", "steps: many\n"),
        "@a_file": ("a_file", "not a folder"),
    }
    if args[1] in files:
        name, text = files[args[1]]
        (tmp_path / name).write_text(text)
        args = [args[0], str(tmp_path / name)]
    out = tmp_path / "out"
    result = bench("run", *FAST, "--out", out, *args)
    TALLY["tried"] += 1
    clear = result.exit_code == 2 and names in result.output and valid in result.output
    TALLY["rejected"] += clear and "Traceback" not in result.output
    assert clear, result.output
    assert "Traceback" not in result.output
    assert not (out / "records").exists()  # nothing ran


# --- disks --------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_keeps_the_records_and_resume_completes(
    tmp_path, reference, monkeypatch
):
    expected = reference("fast")
    mount = tmp_path / "disk"
    out = mount / "run"
    with tmpfs(mount, "40k") as mounted:  # ~10 pages: fills after a few records
        if not mounted:  # not root: the same OSError, injected on the 6th rename
            real, calls = os.replace, []

            def full(src, dst):
                calls.append(dst)
                if len(calls) >= 6:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
                real(src, dst)

            monkeypatch.setattr(os, "replace", full)
        result = bench("run", *FAST, "--out", out)
        TALLY["tried"] += 1
        assert result.exit_code == 4, result.output
        assert "No space left on device" in result.output and "Traceback" not in result.output
        TALLY["rejected"] += 1
        kept = len(record_files(out))
        assert 0 < kept < 12 and all_parse(out)
        assert not list((out / "records").glob(".tmp-*"))
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)
        else:
            monkeypatch.setattr(os, "replace", real)
        result = bench("run", *FAST, "--out", out)
        assert result.exit_code == 0, result.output
        assert f"{kept} already done, {12 - kept} to run" in result.output
        pd.testing.assert_frame_equal(stable(pd.read_csv(out / "per_image.csv")), expected)
        TALLY["lost"] += count_lost(out, expected)


def test_a_read_only_out_is_one_line(tmp_path):
    mount = tmp_path / "ro"
    with tmpfs(mount, "1m", read_only=True) as mounted:
        if not mounted:
            if os.geteuid() == 0:
                pytest.skip("root without mount: a read-only folder cannot be made")
            mount.chmod(0o555)
        result = bench("run", *FAST, "--out", mount / "run")
        TALLY["tried"] += 1
        assert result.exit_code == 4, result.output
        assert f"cannot write {mount / 'run'}" in result.output
        assert "Traceback" not in result.output
        TALLY["rejected"] += 1


# --- signals ------------------------------------------------------------------------------


def test_sigterm_exits_cleanly_with_the_csv_written(tmp_path, reference):
    expected = reference("fast")
    out = tmp_path / "run"
    proc = bench_process(
        ["run", *FAST, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    wait_for(lambda: len(record_files(out)) >= 2 or proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err.decode()
    assert "terminated (SIGTERM)" in err.decode() and "Traceback" not in err.decode()
    TALLY["kills"] += 1
    TALLY["sigterm"] += 1
    rows = len(pd.read_csv(out / "per_image.csv"))
    assert 2 <= rows == len(record_files(out)) < 12 and all_parse(out)
    assert not list((out / "claims").glob("*"))  # its claims were released
    assert bench("run", *FAST, "--out", out).exit_code == 0
    pd.testing.assert_frame_equal(stable(pd.read_csv(out / "per_image.csv")), expected)
    TALLY["lost"] += count_lost(out, expected)


@pytest.mark.parametrize(
    ("kills", "sweep"),
    [(1, "fast"), pytest.param(10, "long", marks=pytest.mark.slow)],
)
def test_sigkill_at_random_points_resumes_to_the_same_csv(tmp_path, reference, kills, sweep):
    expected = reference(sweep)
    args = FAST if sweep == "fast" else LONG
    rng = random.Random(12)
    out, survived = tmp_path / "run", 0
    while survived < kills:
        target = len(record_files(out)) + rng.randint(1, 3)
        proc = bench_process(["run", *args, "--out", str(out)], stderr=subprocess.DEVNULL)
        wait_for(lambda t=target, p=proc: len(record_files(out)) >= t or p.poll() is not None)
        time.sleep(rng.uniform(0, 0.4))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        survived += 1
        assert all_parse(out)
    TALLY["kills"] += survived
    TALLY["sigkill"] += survived
    assert survived == kills
    result = bench("run", *args, "--out", out)
    assert result.exit_code == 0, result.output
    assert not (out / "records" / "quarantine").exists()
    pd.testing.assert_frame_equal(stable(pd.read_csv(out / "per_image.csv")), expected)
    TALLY["lost"] += count_lost(out, expected)


# --- concurrency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processes", "sweep"),
    [(2, "fast"), pytest.param(4, "long", marks=pytest.mark.slow)],
)
def test_processes_sharing_out_solve_each_cell_once(
    tmp_path, reference, monkeypatch, processes, sweep
):
    """processes - 1 child processes and this one, started together on one --out."""
    expected = reference(sweep)
    args = ["run", *(FAST if sweep == "fast" else LONG), "--out", str(tmp_path / "run")]
    out, log, go = tmp_path / "run", tmp_path / "solves.log", tmp_path / "go"
    children = [
        bench_process(args, log, go, processes, stderr=subprocess.PIPE)
        for _ in range(processes - 1)
    ]
    monkeypatch.setitem(registry.SOLVERS, "ldps", logged_solver(log, processes))
    wait_for(lambda: len(list(tmp_path.glob("solves.log.ready-*"))) == processes - 1)
    go.touch()
    here = bench(*args)
    errors = [p.communicate(timeout=900)[1].decode() for p in children]
    assert [here.exit_code] + [p.returncode for p in children] == [0] * processes, errors
    per_process = solves(log)
    TALLY["duplicates"] += sum(per_process.values()) - len(expected)
    TALLY["concurrent_runs"] += 1
    assert sum(per_process.values()) == len(expected) == len(record_files(out))
    assert len(per_process) == processes  # the work was split, not done by one
    assert all_parse(out) and not list((out / "claims").glob("*"))
    pd.testing.assert_frame_equal(fresh_csv(out), expected)
    TALLY["lost"] += count_lost(out, expected)


# --- status -------------------------------------------------------------------------------


def test_status_counts_done_failed_and_claimed_without_running(tmp_path, reference):
    reference("fast")
    out = tmp_path / "run"
    assert bench("run", *FAST, "--out", out, "--images", "2").exit_code == 0
    first, second = record_files(out)[:2]
    failed = {**json.loads(first.read_text()), "status": "diverged", "error": "step 3"}
    first.write_text(json.dumps(failed))
    second.unlink()
    assert claim(out, second.stem)  # held by a live process: this one
    result = bench("run", "--status", "--out", out)
    assert result.exit_code == 0, result.output
    assert "3 of 4 cells done (2 ok, 1 failed: diverged 1), 1 claimed by running processes, " in (
        result.output
    )
    assert "0 not started" in result.output
    assert len(record_files(out)) == 3  # nothing ran


def test_status_counts_against_the_last_plan_only(tmp_path):
    out = tmp_path / "run"
    assert bench("run", *FAST, "--out", out, "--images", "2").exit_code == 0  # 4 cells
    narrower = [a if a != "sr4,inpaint" else "sr4" for a in FAST]
    assert bench("run", *narrower, "--out", out, "--images", "1").exit_code == 0  # 1 of them
    result = bench("run", "--status", "--out", out)
    assert result.exit_code == 0, result.output
    assert "1 of 1 cells done (1 ok, 0 failed)" in result.output
    assert "3 records of cells outside the last plan" in result.output
