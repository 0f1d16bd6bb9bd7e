"""A stand-in SLURM for tests: `sbatch`, `srun`, `sacct`, `squeue`, `scancel` on PATH.

`sbatch FILE` keeps a copy of the script (FAKE_SLURM_DIR/scripts/<job id>.sh), prints
"Submitted batch job <id>" and runs the array tasks of it here in the background, `%P` at a
time, with the SLURM_* variables a real task sees; `sacct` reports their states;
`scontrol requeue ID` runs the task again once it has exited.
FAKE_SLURM_KILL="TASK:N:STATE" stops array task TASK once FAKE_SLURM_WATCH holds N files:
NODE_FAIL with SIGKILL; TIMEOUT with SIGUSR2 (the warning submitit asks for, on which it
checkpoints and calls `scontrol requeue`), SIGTERM, then SIGKILL; PREEMPTED with SIGTERM then
SIGKILL, after which the task is requeued and runs again (SLURM's PreemptMode=REQUEUE).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_DIR", "/tmp/fake-slurm"))
KILL_SIGNALS = {
    "NODE_FAIL": [signal.SIGKILL],
    "PREEMPTED": [signal.SIGTERM, signal.SIGKILL],
    "TIMEOUT": [signal.SIGUSR2, signal.SIGTERM, signal.SIGKILL],
}


def sbatch(script: str) -> int:
    """Keep the script, queue its array tasks (PENDING) and start them in the background."""
    text = Path(script).read_text()
    (STATE / "scripts").mkdir(parents=True, exist_ok=True)
    counter = STATE / "next_id"
    job_id = int(counter.read_text()) if counter.exists() else 1000
    counter.write_text(str(job_id + 1))
    (STATE / "scripts" / f"{job_id}.sh").write_text(text)
    array = re.search(r"^#SBATCH --array=0-(\d+)%(\d+)$", text, flags=re.M)
    tasks = [f"{job_id}_{i}" for i in range(int(array.group(1)) + 1)] if array else [str(job_id)]
    for task in tasks:
        set_state(task, "PENDING")
    parallel = array.group(2) if array else "1"
    args = [sys.executable, __file__, "run-array", script, parallel, *tasks]
    quiet = {k: subprocess.DEVNULL for k in ("stdin", "stdout", "stderr")}
    subprocess.Popen(args, start_new_session=True, **quiet)  # sbatch returns at once
    print(f"Submitted batch job {job_id}")
    return 0


def run_array(script: str, parallel: int, tasks: list[str]) -> int:
    """Run the tasks ('<job>_<index>' of an array, or '<job>') of `script`, `parallel` at a
    time, as SLURM would start them."""
    cpus = re.search(r"^#SBATCH --cpus-per-task=(\d+)$", Path(script).read_text(), flags=re.M)
    running: list[tuple[str, dict, subprocess.Popen]] = []
    for number, task in enumerate(tasks):
        while sum(proc.poll() is None for *_, proc in running) >= parallel:
            time.sleep(0.05)
        job_id, _, index = task.partition("_")
        array = {"SLURM_ARRAY_JOB_ID": job_id, "SLURM_ARRAY_TASK_ID": index} if index else {}
        env = {
            **os.environ,
            **array,
            "SLURM_JOB_ID": str(int(job_id) * 1000 + number) if index else job_id,
            "SLURM_NTASKS": "1",
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
            "SLURM_NODEID": "0",
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_JOB_NODELIST": "localhost",
            "SLURM_CPUS_PER_TASK": cpus.group(1) if cpus else "1",
        }
        set_state(task, "RUNNING")
        running.append((task, env, subprocess.Popen(["bash", script], env=env)))
    for task, env, proc in running:
        proc.wait()
        if state_of(task) in ("PREEMPTED", "REQUEUED"):  # the same task runs again, unharmed
            set_state(task, "RUNNING")
            env.pop("FAKE_SLURM_KILL")
            proc = subprocess.Popen(["bash", script], env=env)
            proc.wait()
        if state_of(task) == "RUNNING":  # a kill recorded its own state
            set_state(task, "COMPLETED" if proc.returncode == 0 else "FAILED")
    return 0


def srun(args: list[str]) -> int:
    """srun --unbuffered --output OUT --error ERR CMD...: CMD with its streams in those files."""
    paths = {}
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            paths[flag] = expand(args.pop(0))
    out = open(paths["--output"], "a")  # noqa: SIM115
    err = open(paths.get("--error", paths["--output"]), "a")  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=out, stderr=err, start_new_session=True)
    kill = os.environ.get("FAKE_SLURM_KILL")
    if kill:
        index, count, state = kill.split(":")
        if index == os.environ.get("SLURM_ARRAY_TASK_ID", "0"):
            watch = Path(os.environ["FAKE_SLURM_WATCH"])
            while proc.poll() is None and len(list(watch.glob("[!.]*"))) < int(count):
                time.sleep(0.02)
            job = os.environ.get("SLURM_ARRAY_JOB_ID")
            set_state(f"{job}_{index}" if job else os.environ["SLURM_JOB_ID"], state)
            for sig in KILL_SIGNALS[state]:
                if proc.poll() is None:
                    os.killpg(proc.pid, sig)
                    time.sleep(0.5)
    return proc.wait()


def expand(pattern: str) -> str:
    """SLURM's file name patterns: %A array job id, %a array task id, %j job id, %t task."""
    env = os.environ
    for key, value in {
        "%A": env.get("SLURM_ARRAY_JOB_ID", ""),
        "%a": env.get("SLURM_ARRAY_TASK_ID", ""),
        "%j": env["SLURM_JOB_ID"],
        "%t": "0",
    }.items():
        pattern = pattern.replace(key, value)
    return pattern


def sacct(args: list[str]) -> int:
    """sacct -o JobID,State,NodeList --parsable2 -j ID...: one line per array task."""
    ids = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for path in sorted((STATE / "states").glob("*")):
        if path.name.split("_")[0] in ids:
            print(f"{path.name}|{path.read_text()}|localhost")
    return 0


def set_state(task: str, state: str) -> None:
    (STATE / "states").mkdir(parents=True, exist_ok=True)
    (STATE / "states" / task).write_text(state)


def state_of(task: str) -> str:
    return (STATE / "states" / task).read_text()


def main() -> int:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "sbatch":
        return sbatch(args[-1])
    if command == "run-array":
        return run_array(args[0], int(args[1]), args[2:])
    if command == "srun":
        return srun(args)
    if command == "sacct":
        return sacct(args)
    if command == "scontrol" and args[0] == "requeue":  # submitit's answer to USR2
        set_state(args[1], "REQUEUED")
    return 0  # squeue, scancel: nothing to do here


if __name__ == "__main__":
    sys.exit(main())
