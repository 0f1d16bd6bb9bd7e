"""Pretrained-weight lookup, SSIM / LPIPS per image, FID / KID maths and their offline paths.

No real pretrained network is available offline: the LPIPS and Inception tests below load
randomly initialised or constant stand-ins placed where the libraries look. Their values are
MEANINGLESS; those tests check only the plumbing (the file is found, loaded and used).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
from fabricate import fabricate_run, fake_alexnet, go_offline, noisy, truth_image
from PIL import Image
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.kid import KernelInceptionDistance

from bench import metrics, weights
from bench.report import report_command
from bench.report.frame import Notes, add_image_metrics, load_frame
from bench.report.perceptual import (
    cleanfid_scores,
    feature_source,
    kid_plan,
    resolve_module,
    set_scores,
    torchmetrics_inception,
    torchmetrics_scores,
)
from bench.weights import WeightsMissing

ALEX = "alexnet-owt-7be5be79.pth"


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No pretrained file anywhere, and any download attempt fails the test."""
    go_offline(monkeypatch, tmp_path)

    def no_download(url: str, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)


def images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def hub_checkpoints(tmp_path: Path) -> Path:
    """The checkpoints folder of the test's TORCH_HOME."""
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_ssim_per_image():
    x, y = images(3), images(3, seed=1)
    values = metrics.ssim(y, x)
    assert values.shape == (3,)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(3, dtype=torch.float64))
    assert values[1] == pytest.approx(float(metrics.ssim(y[1:2], x[1:2])[0]))


def test_lpips_loads_the_backbone_from_torch_home(tmp_path):
    state = fake_alexnet(hub_checkpoints(tmp_path) / ALEX)
    model = metrics.lpips_model("alex")
    assert torch.equal(model.net.net.slice1[0].weight, state["features.0.weight"])
    x, y = images(2), images(2, seed=1)
    scores = metrics.lpips(y, x, "alex")  # meaningless numbers from a random backbone
    assert scores.shape == (2,) and torch.isfinite(scores).all() and (scores > 0).all()
    assert metrics.lpips(y[1:], x[1:], "alex").shape == (1,)
    assert float(metrics.lpips(y[1:], x[1:], "alex")[0]) == pytest.approx(float(scores[1]))
    assert torch.allclose(metrics.lpips(x, x, "alex"), torch.zeros(2, dtype=torch.float64))


def test_lpips_finds_the_configured_weights_folder(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    state = fake_alexnet(folder / ALEX)
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(folder))
    home = os.environ["TORCH_HOME"]
    model = metrics.lpips_model("alex")
    assert torch.equal(model.net.net.slice1[0].weight, state["features.0.weight"])
    assert os.environ["TORCH_HOME"] == home  # the temporary hub dir is undone
    assert weights.lpips_backbone("alex").find() == folder / ALEX


def test_lpips_without_backbone_raises_weights_missing(tmp_path):
    with pytest.raises(WeightsMissing) as error:
        metrics.lpips(images(1), images(1), "vgg")
    assert error.value.file_name == "vgg16-397923af.pth"
    assert error.value.searched == [hub_checkpoints(tmp_path) / "vgg16-397923af.pth"]
    message = str(error.value)
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert str(hub_checkpoints(tmp_path)) in message and weights.WEIGHTS_ENV in message


def test_report_scores_lpips_when_the_backbone_is_present(tmp_path):
    fake_alexnet(hub_checkpoints(tmp_path) / ALEX)
    rows = [
        {"key": f"k{i}", "image_id": f"{i:04d}", "recon": noisy(truth_image(f"{i:04d}"), 20, i)}
        for i in range(2)
    ]
    notes = Notes()
    frame = add_image_metrics(
        load_frame([fabricate_run(tmp_path / "run", rows)]), lpips=True, device="cpu", notes=notes
    )
    assert frame.lpips_alex.notna().all() and frame.lpips_vgg.isna().all()
    assert any("vgg16-397923af.pth" in line for line in notes.lines)
    assert not any(ALEX in line for line in notes.lines)


def test_manifest_and_doctor_rows(tmp_path, monkeypatch):
    for key in ("lpips-alex", "lpips-vgg", "fid-inception", "cleanfid-inception"):
        entry = weights.MANIFEST[key]
        assert entry.source.startswith("https://") and entry.used_by
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"stand-in")
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(folder))
    cache = tmp_path / "hf"
    snapshot = cache / "models--stable-diffusion-v1-5--stable-diffusion-v1-5" / "snapshots" / "abc"
    for component in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (snapshot / component).mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    rows = {row["what"]: row for row in weights.doctor_rows()}
    assert rows["fid-inception"]["status"] == "found"
    assert rows["fid-inception"]["path"] == str(
        folder / "weights-inception-2015-12-05-6726825d.pth"
    )
    assert rows["lpips-alex"]["status"] == "missing"
    assert rows["lpips-alex"]["path"] == str(hub_checkpoints(tmp_path) / ALEX)
    assert rows["cleanfid-inception"]["path"] == str(
        tmp_path / "cleanfid" / "inception-2015-12-05.pt"
    )
    assert rows["lpips-alex-linear"]["status"] == "found"  # shipped inside torchmetrics
    assert rows["sd15"]["status"] == "found" and rows["sd15"]["path"] == str(snapshot)
    assert rows["rv51"]["status"] == "missing" and "hf download" in rows["rv51"]["source"]


def test_doctor_command_prints_status_and_fixes(capsys):
    assert weights.doctor_command() == 1  # nothing the default report needs is present
    out = capsys.readouterr().out.replace("\n", "")
    assert "missing" in out and "`bench fetch-weights lpips-alex`" in out


def fid_by_hand(real: np.ndarray, fake: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)) with scipy's sqrtm."""
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def kid_by_hand(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets, cubic kernel k(x, y) = (x.y / d + 1)^3."""
    m, d = real.shape

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / d + 1) ** 3

    kxx, kyy, kxy = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.sum() / m**2)


def features(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    """Correlated Gaussian features, shifted by `shift`."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    return torch.from_numpy(rng.normal(size=(n, d)) @ mix + shift)


@pytest.mark.parametrize("scorer", [torchmetrics_scores, cleanfid_scores])
def test_fid_and_kid_match_independent_formulas(scorer):
    real, fake = features(12, 5, 0.0, 0), features(12, 5, 0.7, 1)
    scores = scorer(real, fake, 123)
    assert scores.fid == pytest.approx(fid_by_hand(real.numpy(), fake.numpy()), rel=1e-6)
    assert scores.kid_x1e3 == pytest.approx(1e3 * kid_by_hand(real.numpy(), fake.numpy()))
    same = scorer(real, real.clone(), 123)
    assert same.fid == pytest.approx(0.0, abs=1e-6) and same.kid_x1e3 < 0


def test_kid_subsets_are_sane_and_seeded():
    assert kid_plan(5, 5) == (1, 5)
    assert kid_plan(5, 8) == (100, 5)
    assert kid_plan(2000, 3000) == (100, 1000)
    real, fake = features(10, 4, 0.0, 2), features(14, 4, 0.5, 3)
    first, again = torchmetrics_scores(real, fake, 7), torchmetrics_scores(real, fake, 7)
    assert first.kid_x1e3 == again.kid_x1e3 and first.kid_x1e3_std > 0
    assert first.fid == pytest.approx(fid_by_hand(real.numpy(), fake.numpy()), rel=1e-6)
    one = torchmetrics_scores(real[:1], fake, 7)
    assert math.isnan(one.fid) and math.isnan(one.kid_x1e3) and "at least 2" in one.note


class TinyNet(nn.Module):
    """A fixed random 3-feature extractor for images in [0, 1] (test stand-in for Inception)."""

    num_features = 3  # torchmetrics reads this instead of probing a 299x299 dummy image

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 5, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.float())).mean(dim=(2, 3))


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_precomputed_features_equal_torchmetrics_with_the_module():
    net = TinyNet().eval()
    real, fake = (images(8, seed=3) + 1) / 2, (images(8, seed=9) + 1) / 2 * 0.8
    fid = FrechetInceptionDistance(feature=net, normalize=True)
    kid = KernelInceptionDistance(feature=net, normalize=True, subsets=1, subset_size=8)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.no_grad():
        scores = torchmetrics_scores(net(real), net(fake))
    assert scores.fid == pytest.approx(float(fid.compute()), rel=1e-5)
    # torchmetrics fed the module's float32 features directly evaluates its kernel in float32
    assert scores.kid_x1e3 == pytest.approx(1e3 * float(kid.compute()[0]), rel=1e-3)


def _png_unit(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")) / 255.0).permute(2, 0, 1)


def test_report_fid_with_a_custom_extractor_matches_the_formulas(tmp_path):
    rows = [
        {
            "key": f"{label}{i}",
            "solver_label": label,
            "image_id": f"{i:04d}",
            "recon": noisy(truth_image(f"{i:04d}"), std, i),
        }
        for label, std in (("a", 10.0), ("b", 40.0))
        for i in range(6)
    ]
    run = fabricate_run(tmp_path / "run", rows)
    out = report_command([run], lpips=False, fid_features=TinyNet())
    summary = pd.read_csv(out / "summary.csv").set_index("solver_label")
    net = TinyNet().eval()
    with torch.no_grad():
        truth = net(torch.stack([_png_unit(p) for p in sorted((run / "truth").rglob("*.png"))]))
        for label in ("a", "b"):
            recon = [_png_unit(run / "images" / f"{label}{i}.png") for i in range(6)]
            fake = net(torch.stack(recon)).double().numpy()
            row = summary.loc[label]
            assert row.fid == pytest.approx(fid_by_hand(truth.double().numpy(), fake), rel=1e-5)
            assert row.kid_x1e3 == pytest.approx(1e3 * kid_by_hand(truth.double().numpy(), fake))
            assert row.fid_n == 6 and row.fid_features == "custom TinyNet"
    assert summary.loc["a", "fid"] < summary.loc["b", "fid"]


def test_resolve_module_accepts_an_import_path():
    assert isinstance(resolve_module("torch.nn:Identity"), nn.Identity)
    with pytest.raises(ValueError, match="package.module:attr"):
        resolve_module("torch.nn.Identity")


def test_missing_inception_is_reported_not_downloaded(tmp_path):
    with pytest.raises(WeightsMissing) as error:
        feature_source("torchmetrics", None, "cpu")
    assert error.value.file_name == "weights-inception-2015-12-05-6726825d.pth"
    assert "github.com/toshas/torch-fidelity/releases" in str(error.value)
    rows = [{"key": f"k{i}", "image_id": f"{i:04d}", "recon": truth_image("x")} for i in range(2)]
    frame = load_frame([fabricate_run(tmp_path / "run", rows)])
    notes = Notes()
    scores = set_scores(frame, backend="clean-fid", custom=None, device="cpu", notes=notes)
    assert scores.fid.isna().all() and scores.fid_note[0].startswith("missing inception-2015")
    assert str(tmp_path / "cleanfid" / "inception-2015-12-05.pt") in notes.lines[0]
    assert "nvlabs-fi-cdn.nvidia.com" in notes.lines[0]


def test_torchmetrics_inception_loads_the_weights_folder(tmp_path, monkeypatch):
    """A CONSTANT stand-in Inception file (values meaningless): found in the folder, loaded, run."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf

    with monkeypatch.context() as patch:  # build once without weights to learn the keys
        patch.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, s: None)
        blank = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    state = {
        k: v if v.dim() == 0 else torch.full((1,), 0.01).expand(v.shape)
        for k, v in blank.state_dict().items()
    }
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(state, folder / "weights-inception-2015-12-05-6726825d.pth")
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(folder))
    source = torchmetrics_inception("cpu")
    assert torch.equal(
        source.module.inner.Conv2d_1a_3x3.conv.weight, state["Conv2d_1a_3x3.conv.weight"]
    )
    run = fabricate_run(tmp_path / "run", [{"image_id": "0000", "recon": truth_image("y")}])
    feats = source([run / "images" / "key0000.png"] * 2)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


class NaNNet(TinyNet):
    """TinyNet whose features are all NaN (what a corrupt weights file can produce)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * math.nan


def test_non_finite_features_leave_fid_empty_instead_of_crashing(tmp_path):
    rows = [
        {"key": f"k{i}", "image_id": f"{i:04d}", "recon": noisy(truth_image(f"{i:04d}"), 20, i)}
        for i in range(4)
    ]
    out = report_command(
        [fabricate_run(tmp_path / "run", rows)], lpips=False, fid_features=NaNNet()
    )
    summary = pd.read_csv(out / "summary.csv")
    assert summary.fid.isna().all() and summary.kid_x1e3.isna().all()
    assert summary.fid_note.str.startswith("non-finite features").all()
