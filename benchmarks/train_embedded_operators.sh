#!/usr/bin/env bash
# Train and ship SILO's latent operators for the embedded prior, one per degradation, on crops
# of the embedded training photos (the default --data of that prior): the preserve CNN at
# widths 32,96 (0.62 M params, 1.2 MB in fp16: the reference's 48,128 would put the shipped
# weights over 25 MB), and the mask-conditioned readout network for inpaint-random.
#   bash benchmarks/train_embedded_operators.sh [STEPS] [DEGRADATION ...]
# then: python benchmarks/export_shipped_operators.py  (weights-only fp16 copies)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
shift || true
degs=("$@")
[ ${#degs[@]} -eq 0 ] && degs=(inpaint inpaint-random blur sr4 sr8 jpeg)
for deg in "${degs[@]}"; do
  spec=$(python -c "from bench.sweep import canonical_spec; from operators import build_degradation; print(canonical_spec(build_degradation('$deg', 64)))")
  variant=preserve
  widths=(--widths 32,96)
  if [ "$deg" = inpaint-random ]; then  # only the readout network takes the per-sample mask
    variant=readout
    widths=()
  fi
  name=$(python -c "from operators.latent.naming import operator_filename; print(operator_filename('embedded', '$spec', '$variant'))")
  OMP_NUM_THREADS=1 bench train-operator --prior embedded --deg "$spec" --variant "$variant" \
    "${widths[@]}" --steps "$steps" --batch 16 --lr 1e-3 --checkpoint-every 100 \
    --out "operators/shipped/$name"
done
