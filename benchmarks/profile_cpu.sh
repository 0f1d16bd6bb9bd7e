#!/usr/bin/env bash
# The 256 px CPU runtime table committed under results/profile/: SD-1.5-shaped networks with
# random weights, each network call alone and 2 steps of each solver through the real code.
# One torch thread (the machine's 2 cores are shared); the isolated calls of every network at
# the same batch run first, so the solves need no warm-up steps of their own (see the NOTE).
# Each solver is timed in ROUNDS paired rounds (a solve, then its calls alone; the median round
# is reported), default 3.
# Usage: [ROUNDS=3] benchmarks/profile_cpu.sh [OUT]   (about 30 minutes on 2 quiet cores)
set -euo pipefail
OUT=${1:-results/profile/sd15-256-cpu}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$(date +%s)
python -m bench profile --arch sd15 --size 256 --solvers silo,ldps,psld,gml-dps --deg sr4 \
    --device cpu --batch 1 --steps 2 --warmup-steps 0 --repeats 1 --solve-repeats "${ROUNDS:-3}" --out "$OUT" \
    2> >(tee "$OUT/log.txt" >&2)
echo "wall clock: $(( $(date +%s) - start )) s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$OUT/log.txt"
