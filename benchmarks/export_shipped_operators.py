"""Slim every full training checkpoint in operators/shipped/ to a weights-only fp16 export.

python benchmarks/export_shipped_operators.py   (after benchmarks/train_embedded_operators.sh)
"""

from pathlib import Path

from operators.latent.checkpoint import export_for_shipping, read_checkpoint

SHIPPED = Path(__file__).resolve().parents[1] / "operators" / "shipped"

if __name__ == "__main__":
    for path in sorted(SHIPPED.glob("*.pt")):
        if read_checkpoint(path)["optimizer"] is not None:
            export_for_shipping(path, path)
        print(f"{path.name}: {path.stat().st_size / 2**20:.2f} MiB")
