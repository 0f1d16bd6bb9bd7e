"""Parameter counts of the three latent operators at SD-1.5 size vs the reference (silo.md §2).

Builds an SD-1.5-config UNet on the meta device (no weights) to read its up-block channels.

    python benchmarks/operator_sizes.py
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from operators.latent import NoiseCNN, PreserveCNN, ReadoutNetwork, parameter_count
from operators.latent.embeddings import unet_sigma_embedding
from operators.latent.readout import feature_channels

SD15_UNET = {
    "sample_size": 64,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
}
REFERENCE = {
    "preserve (§2.3)": 1_185_690,
    "noise-cnn (§2.2)": 3_548_566,
    "readout (§2.1)": 13_746_864,
    "readout + mask": 13_748_016,
}


def main() -> None:
    """Print ours vs the reference for each variant."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        emb = unet_sigma_embedding(unet)
        nets = {
            "preserve (§2.3)": PreserveCNN(),
            "noise-cnn (§2.2)": NoiseCNN(emb, (4, 64, 64)),
            "readout (§2.1)": ReadoutNetwork(feature_channels(unet), emb, (64, 64)),
            "readout + mask": ReadoutNetwork(feature_channels(unet), emb, (64, 64), True),
        }
    print(f"{'variant':18} {'ours':>12} {'reference':>12}")
    for name, net in nets.items():
        print(f"{name:18} {parameter_count(net):>12,} {REFERENCE[name]:>12,}")


if __name__ == "__main__":
    main()
