#!/usr/bin/env bash
# Rebuild every shipped file of the embedded prior on a 2-core CPU, keeping both cores busy:
# the VAE (2 threads), then the UNet beside the five preserve operators (1 thread each; the
# operators see only the autoencoder), then the export, the readout operator for
# inpaint-random (it reads the new UNet's features), the fp16 operator export and the
# evaluation (results/embedded/vae_recon.png, samples.png, metrics.json).
#   bash benchmarks/rebuild_embedded.sh [CHECKPOINT_DIR]   (default runs/embedded; resumable)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/embedded}
train() { python benchmarks/train_embedded.py --out "$out" "$@"; }
OMP_NUM_THREADS=2 train --stage vae --threads 2 --resume
OMP_NUM_THREADS=1 train --stage unet --resume &
unet=$!
until [ -f "$out/latents.pt" ]; do
  kill -0 "$unet"
  sleep 10
done
train --stage export-vae
bash benchmarks/train_embedded_operators.sh 400 inpaint blur sr4 sr8 jpeg
wait "$unet"
train --stage export
bash benchmarks/train_embedded_operators.sh 400 inpaint-random
python benchmarks/export_shipped_operators.py
python benchmarks/eval_embedded.py --threads 2
