#!/usr/bin/env bash
# Train and ship SILO's latent operators (preserve CNN) for the embedded prior, one per
# degradation, on crops of the embedded training photos (the default --data of that prior).
#   bash benchmarks/train_embedded_operators.sh [STEPS]
# then: python benchmarks/export_shipped_operators.py  (weights-only fp16 copies, 2.3-3 MiB each)
# Measured here (400 steps, batch 16, 1 thread, 2 shared cores): about 4.5 min per operator.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
for deg in inpaint inpaint-random blur sr4 sr8 jpeg; do
  spec=$(python -c "from bench.sweep import canonical_spec; from operators import build_degradation; print(canonical_spec(build_degradation('$deg', 64)))")
  name=$(python -c "from operators.latent.naming import operator_filename; print(operator_filename('embedded', '$spec', 'preserve'))")
  variant=preserve
  if [ "$deg" = inpaint-random ]; then  # only the readout network takes the per-sample mask
    variant=readout
    name=$(python -c "from operators.latent.naming import operator_filename; print(operator_filename('embedded', '$spec', 'readout'))")
  fi
  OMP_NUM_THREADS=1 bench train-operator --prior embedded --deg "$spec" --variant "$variant" \
    --steps "$steps" --batch 16 --lr 1e-3 --checkpoint-every 100 --out "operators/shipped/$name"
done
