"""FID and KID over whole sets (solver x setting) against the ground-truth PNGs of the same ids."""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from bench.metrics import to_unit
from bench.report.frame import GROUP, Notes, load_png, png_path
from bench.weights import MANIFEST, WeightsMissing

KID_SUBSETS = 100
KID_MAX_SUBSET = 1000
SEED = 123  # SILO's calc_batch.py seeds torch with 123 before FID/KID
BATCH = 32
INCEPTION_DIM = 2048
FID_COLUMNS = [
    *("fid", "kid_x1e3", "kid_x1e3_std", "fid_n", "fid_real_n", "kid_subset_size", "kid_subsets"),
    *("fid_features", "fid_note"),
]


@dataclass(frozen=True)
class SetScores:
    """FID, KID x1e3 and its std over subsets; a note saying why they are NaN, if they are."""

    fid: float
    kid_x1e3: float
    kid_x1e3_std: float
    note: str = ""

    @classmethod
    def undefined(cls, note: str) -> SetScores:
        """NaN scores with the reason."""
        return cls(math.nan, math.nan, math.nan, note)


def _too_few(real: torch.Tensor, fake: torch.Tensor) -> SetScores | None:
    """NaN scores when either set has fewer than 2 samples, else None."""
    n = min(len(real), len(fake))
    return SetScores.undefined(f"n={n}: need at least 2 per set") if n < 2 else None


def kid_plan(n_real: int, n_fake: int) -> tuple[int, int]:
    """(subsets, subset size): size min(n, 1000); a single subset when it is both whole sets."""
    size = min(n_real, n_fake, KID_MAX_SUBSET)
    return (1 if n_real == n_fake == size else KID_SUBSETS), size


class Passthrough(nn.Module):
    """Hands precomputed (N, d) features to torchmetrics as if its extractor had made them."""

    def __init__(self, num_features: int) -> None:
        """torchmetrics reads `num_features` instead of probing with a dummy image."""
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The features themselves."""
        return features


def torchmetrics_scores(real: torch.Tensor, fake: torch.Tensor, seed: int = SEED) -> SetScores:
    """FID and KID (cubic kernel, unbiased MMD^2) by torchmetrics from (N, d) features."""
    if too_few := _too_few(real, fake):
        return too_few
    subsets, size = kid_plan(len(real), len(fake))
    fid = FrechetInceptionDistance(feature=Passthrough(real.shape[1]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(
            feature=Passthrough(real.shape[1]), subsets=subsets, subset_size=size
        )
    for metric in (fid, kid):
        metric.update(real.double(), real=True)
        metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return SetScores(float(fid.compute()), 1e3 * float(kid_mean), 1e3 * float(kid_std))


def cleanfid_scores(real: torch.Tensor, fake: torch.Tensor, seed: int = SEED) -> SetScores:
    """FID and KID by clean-fid's own formulas from (N, d) features (it gives no KID std)."""
    from cleanfid import fid as cleanfid

    if too_few := _too_few(real, fake):
        return too_few
    r, f = real.double().numpy(), fake.double().numpy()
    subsets, size = kid_plan(len(r), len(f))
    state = np.random.get_state()
    np.random.seed(seed)  # clean-fid draws its KID subsets from the global numpy RNG
    try:
        kid = cleanfid.kernel_distance(r, f, num_subsets=subsets, max_subset_size=size)
    finally:
        np.random.set_state(state)
    with warnings.catch_warnings():  # clean-fid 0.1.35 passes scipy's deprecated sqrtm(disp=)
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated.*")
        fid = float(cleanfid.fid_from_feats(r, f))
    return SetScores(fid, 1e3 * kid, math.nan)


SCORERS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], SetScores]] = {
    "torchmetrics": torchmetrics_scores,
    "clean-fid": cleanfid_scores,
}


class UnitToBytes(nn.Module):
    """float [0, 1] -> uint8 as torchmetrics' normalize=True does, then the wrapped extractor."""

    def __init__(self, inner: nn.Module, num_features: int) -> None:
        """Wrap `inner`, which takes uint8 images."""
        super().__init__()
        self.inner = inner
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of images in [0, 1]."""
        return self.inner((x * 255).byte())


class ModuleFeatures:
    """Features of PNG files from a module taking float [0, 1] (N, 3, H, W) images."""

    def __init__(self, module: nn.Module, name: str, device: str) -> None:
        """Move the module to `device` in eval mode."""
        self.module = module.to(device).eval()
        self.name = name
        self.device = device

    def __call__(self, paths: list[Path]) -> torch.Tensor:
        """(N, d) float64 features, in batches."""
        out = []
        for start in range(0, len(paths), BATCH):
            chunk = paths[start : start + BATCH]
            x = torch.stack([to_unit(load_png(p)) for p in chunk]).float().to(self.device)
            with torch.no_grad():
                out.append(self.module(x).double().cpu().reshape(len(chunk), -1))
        return torch.cat(out)


class CleanFidFeatures:
    """clean-fid's TorchScript InceptionV3 on its 'clean' (PIL bicubic to 299) resize."""

    name = "clean-fid InceptionV3 (TorchScript), mode clean: PIL bicubic resize to 299"

    def __init__(self, device: str) -> None:
        """Load the local TorchScript file; WeightsMissing before clean-fid could download it."""
        from cleanfid.inception_torchscript import InceptionV3W

        path = MANIFEST["cleanfid-inception"].require()
        self.model = InceptionV3W(str(path.parent), download=False).to(device).eval()
        self.device = torch.device(device)

    def __call__(self, paths: list[Path]) -> torch.Tensor:
        """(N, 2048) float64 features."""
        from cleanfid.fid import get_files_features

        feats = get_files_features(
            [str(p) for p in paths],
            self.model,
            num_workers=0,
            batch_size=BATCH,
            device=self.device,
            mode="clean",
            verbose=False,
        )
        return torch.from_numpy(feats).double()


def torchmetrics_inception(device: str) -> ModuleFeatures:
    """torch-fidelity's InceptionV3 as torchmetrics builds it, from the local weights file."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    path = MANIFEST["fid-inception"].require()
    net = NoTrainInceptionV3(
        name="inception-v3-compat",
        features_list=[str(INCEPTION_DIM)],
        feature_extractor_weights_path=str(path),
    )
    name = "torch-fidelity InceptionV3 pool3 (torchmetrics), antialiased bilinear resize to 299"
    return ModuleFeatures(UnitToBytes(net, INCEPTION_DIM), name, device)


def resolve_module(spec: str | nn.Module) -> nn.Module:
    """A module, or 'package.module:attr' naming a module or a factory returning one."""
    if isinstance(spec, nn.Module):
        return spec
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"--fid-features wants 'package.module:attr', got {spec!r}")
    found = getattr(importlib.import_module(module_name), attr)
    module = found if isinstance(found, nn.Module) else found()
    if not isinstance(module, nn.Module):
        raise TypeError(f"{spec!r} gave {type(module).__name__}, not a torch.nn.Module")
    return module


def feature_source(
    backend: str, custom: str | nn.Module | None, device: str
) -> ModuleFeatures | CleanFidFeatures:
    """The feature extractor of a backend, or the custom module; WeightsMissing when absent."""
    if backend not in SCORERS:
        raise ValueError(f"unknown FID backend {backend!r}; valid: {', '.join(SCORERS)}")
    if custom is not None:
        module = resolve_module(custom)
        return ModuleFeatures(module, f"custom {type(module).__name__}", device)
    return torchmetrics_inception(device) if backend == "torchmetrics" else CleanFidFeatures(device)


def empty_scores(frame: pd.DataFrame, note: str) -> pd.DataFrame:
    """The FID/KID columns of every group, NaN with `note` (e.g. when FID is switched off)."""
    groups = frame[GROUP].drop_duplicates().reset_index(drop=True)
    return groups.assign(**{**dict.fromkeys(FID_COLUMNS, math.nan), "fid_note": note})


def set_scores(
    frame: pd.DataFrame,
    *,
    backend: str,
    custom: str | nn.Module | None,
    device: str,
    notes: Notes,
) -> pd.DataFrame:
    """FID/KID per (prior, dataset, solver_label, degradation, sigma): recon vs truth PNGs."""
    try:
        source = feature_source(backend, custom, device)
    except WeightsMissing as e:
        notes.add(f"FID/KID left empty (never computed with a random network). {e}")
        source, missing = None, f"missing {e.file_name} (see the report notes)"
    reals: dict[tuple[Path, ...], torch.Tensor] = {}
    rows = []
    for keys, group in frame[frame.status == "ok"].groupby(GROUP, dropna=False, sort=True):
        pngs = [(png_path(r, "recon_png"), png_path(r, "truth_png")) for _, r in group.iterrows()]
        fakes = [f for f, t in pngs if f and t]
        truths = tuple(sorted({t for f, t in pngs if f and t}))
        if source is None:
            scores = SetScores.undefined(missing)
        elif min(len(fakes), len(truths)) < 2:
            scores = SetScores.undefined(
                f"n={len(fakes)} recon / {len(truths)} truth PNGs: need at least 2 per set"
            )
        else:
            if truths not in reals:
                reals[truths] = source(list(truths))
            real, fake = reals[truths], source(fakes)
            finite = bool(torch.isfinite(real).all() and torch.isfinite(fake).all())
            scores = (  # LAPACK crashes the process on NaN (a corrupt weights file, say)
                SCORERS[backend](real, fake, SEED)
                if finite
                else SetScores.undefined("non-finite features: check the weights file")
            )
        subsets, size = (
            kid_plan(len(truths), len(fakes)) if np.isfinite(scores.kid_x1e3) else (0, 0)
        )
        rows.append(
            {
                **dict(zip(GROUP, keys, strict=True)),
                "fid": scores.fid,
                "kid_x1e3": scores.kid_x1e3,
                "kid_x1e3_std": scores.kid_x1e3_std,
                "fid_n": len(fakes),
                "fid_real_n": len(truths),
                "kid_subset_size": size or math.nan,
                "kid_subsets": subsets or math.nan,
                "fid_features": source.name if source else "",
                "fid_note": scores.note,
            }
        )
    if source is not None and custom is None and any(r["fid_n"] < INCEPTION_DIM for r in rows):
        notes.add(
            f"FID on fewer than {INCEPTION_DIM} images is biased upwards and depends on n: "
            "compare FIDs only at equal fid_n (the SILO paper used 1000 per set)."
        )
    return pd.DataFrame(rows, columns=[*GROUP, *FID_COLUMNS])
