"""PSNR of a linear PCA patch code at the embedded VAE's compression, as a yardstick for it.

    python benchmarks/vae_linear_baseline.py

PCA of non-overlapping p x p RGB patches of the training crops, keeping k components, applied to
the 16 held-out crops: (p, k) = (4, 4) and (8, 16) both keep 1/12 of the numbers, as the
(4, 16, 16) latents of a 64 px image do.
"""

import torch
import torch.nn.functional as F

from bench.embedded_data import embedded_heldout_source, embedded_training_photos, random_crops
from bench.priors.embedded import IMAGE_SIZE


def patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """(N, 3, S, S) -> (N * (S / p)^2, 3 p^2) non-overlapping patches."""
    cols = F.unfold(images, p, stride=p)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def pca_psnr(train: torch.Tensor, test: torch.Tensor, p: int, k: int) -> float:
    """Mean per-image PSNR (on [0, 1]) of `test` through the top-k PCA code of `train`."""
    rows = patches(train, p)
    mean = rows.mean(0)
    _, _, v = torch.pca_lowrank(rows - mean, q=k, center=False, niter=6)
    basis = v[:, :k]
    code = (patches(test, p) - mean) @ basis
    rec_rows = code @ basis.T + mean
    n, side = test.shape[0], test.shape[-1]
    rec = F.fold(rec_rows.reshape(n, (side // p) ** 2, -1).transpose(1, 2), side, p, stride=p)
    mse = ((rec.clamp(-1, 1) - test) / 2).pow(2).flatten(1).mean(1)
    return float((-10 * torch.log10(mse)).mean())


if __name__ == "__main__":
    train = random_crops(
        embedded_training_photos(), 2048, IMAGE_SIZE, torch.Generator().manual_seed(0)
    )
    source = embedded_heldout_source(IMAGE_SIZE)
    test = torch.stack([source.load(i) for i in source.ids])
    for p, k in ((4, 4), (8, 16)):
        print(f"PCA of {p}x{p} patches, {k} components: {pca_psnr(train, test, p, k):.2f} dB")
