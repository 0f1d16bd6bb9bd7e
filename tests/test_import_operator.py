"""`bench import-operator`: official SILO state dicts (names and shapes of the release) in, our
checkpoints out, the same function computed; the references are written out here by hand."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from bench.cli import app
from operators.latent.checkpoint import read_checkpoint
from operators.latent.factory import build_network

runner = CliRunner()
EMB = 128  # the preserve CNN's noise embedding width


# --- the official layouts (silo.md §2): name -> shape -------------------------------------


def official_preserve_shapes(base: int = 48, blocks: int = 3, latent: int = 4) -> dict:
    """The official preserve CNN (base_channels=48, num_blocks=3, noise_embed_dim=128)."""
    shapes = {
        "initial_proj.0.weight": (latent, latent, 1, 1),
        "initial_proj.0.bias": (latent,),
        "initial_conv.weight": (base, latent + 8, 3, 3),
        "initial_conv.bias": (base,),
        "final_conv.weight": (latent, base, 3, 3),
        "final_conv.bias": (latent,),
        "skip_scale": (1,),
        "identity_gate.0.weight": (1, EMB),
        "identity_gate.0.bias": (1,),
        "pos_embedding.positional_embedding": (8, 64, 64),
    }

    def block(prefix: str, cin: int, cout: int) -> None:
        shapes.update(
            {
                f"{prefix}.conv1.weight": (cout, cin, 3, 3),
                f"{prefix}.conv1.bias": (cout,),
                f"{prefix}.norm1.weight": (cout,),
                f"{prefix}.norm1.bias": (cout,),
                f"{prefix}.noise_proj.weight": (cout, EMB),
                f"{prefix}.noise_proj.bias": (cout,),
                f"{prefix}.conv2.weight": (cout, cout, 3, 3),
                f"{prefix}.conv2.bias": (cout,),
                f"{prefix}.norm2.weight": (cout,),
                f"{prefix}.norm2.bias": (cout,),
            }
        )
        if cin != cout:
            shapes[f"{prefix}.skip_conv.weight"] = (cout, cin, 1, 1)
            shapes[f"{prefix}.skip_conv.bias"] = (cout,)

    channels = [base] + [min(base * 2**i, 128) for i in range(blocks)]
    for i in range(blocks):
        block(f"blocks.{i}", channels[i], channels[i + 1])
    block("bottleneck", channels[-1], channels[-1])
    for i in range(blocks):
        j = blocks - i
        cin = channels[j] + channels[j - 1] if i else channels[j]
        block(f"up_blocks.{i}", cin, channels[j - 1])
    return shapes


def official_cnn_shapes(h: int = 64, w: int = 64, emb: int = 1280, latent: int = 4) -> dict:
    """silo_utils.DegradationModel(4, layer_norm=True, sigma_condition=True)."""
    shapes = {
        "sigma_condition_precondition.0.weight": (32, emb),
        "sigma_condition_precondition.0.bias": (32,),
        "sigma_condition_precondition.2.weight": (h * w, 32),
        "sigma_condition_precondition.2.bias": (h * w,),
    }

    def conv_ln(prefix: str, index: int, cin: int, cout: int, k: int = 3, t: bool = False):
        shapes[f"{prefix}.{index}.weight"] = (cin, cout, k, k) if t else (cout, cin, k, k)
        shapes[f"{prefix}.{index}.bias"] = (cout,)
        shapes[f"{prefix}.{index + 1}.weight"] = (cout, h, w)
        shapes[f"{prefix}.{index + 1}.bias"] = (cout, h, w)

    for i, (a, b) in enumerate([(latent + 1, 17), (17, 33), (33, 65), (65, 128)]):
        conv_ln("encoder", 3 * i, a, b)
    for i, (a, b) in enumerate([(128, 64), (64, 32), (32, 16)]):
        conv_ln("decoder", 3 * i, a, b, t=True)
    conv_ln("adjust_encoding", 0, 129, 16, k=1)
    conv_ln("processing", 0, 16, 16)
    shapes["processing.3.weight"] = (latent, 16, 3, 3)
    shapes["processing.3.bias"] = (latent,)
    return shapes


def official_readout_shapes(
    dims: list[int], h: int = 64, w: int = 64, emb: int = 1280, mask: bool = False
) -> dict:
    """dhf AggregationNetwork(projection_dim 384, sigma_condition, output head to 4 channels)."""
    shapes = {
        "sigma_emb_norm.weight": (1, h, w),
        "sigma_emb_norm.bias": (1, h, w),
        "sigma_emb_linear.weight": (h * w, emb),
        "sigma_emb_linear.bias": (h * w,),
        "mixing_weights": (len(dims),),
        "output_head.0.weight": (128, 385 + int(mask), 3, 3),
        "output_head.0.bias": (128,),
        "output_head.2.weight": (32, 128, 3, 3),
        "output_head.2.bias": (32,),
        "output_head.4.weight": (4, 32, 1, 1),
        "output_head.4.bias": (4,),
    }
    for i, c in enumerate(dims):
        p = f"bottleneck_layers.{i}"
        for name, shape in (
            ("shortcut", (384, c + 1, 1, 1)),
            ("conv1", (96, c + 1, 1, 1)),
            ("conv2", (96, 96, 3, 3)),
            ("conv3", (384, 96, 1, 1)),
        ):
            shapes[f"{p}.{name}.weight"] = shape
            shapes[f"{p}.{name}.norm.weight"] = shape[:1]
            shapes[f"{p}.{name}.norm.bias"] = shape[:1]
        shapes[f"{p}.emb_layers.weight"] = (96, emb)
        shapes[f"{p}.emb_layers.bias"] = (96,)
    return shapes


def parameters(shapes: dict, skip: tuple[str, ...] = ()) -> int:
    return sum(math.prod(s) for k, s in shapes.items() if k not in skip)


def test_official_layouts_have_the_published_parameter_counts():
    """silo.md §2: 1,185,690 (preserve), 3,548,566 (cnn), 13,746,864 (readout, SD-1.5)."""
    buffer = ("pos_embedding.positional_embedding",)
    assert parameters(official_preserve_shapes(), buffer) == 1_185_690
    assert parameters(official_cnn_shapes()) == 3_548_566
    sd_dims = [1280] * 6 + [640] * 3 + [320] * 3
    assert parameters(official_readout_shapes(sd_dims)) == 13_746_864
    assert parameters(official_readout_shapes(sd_dims, mask=True)) == 13_748_016


def position_map() -> torch.Tensor:
    """The official fixed buffer: y then x channels, sin/cos at frequencies 1 and 1e4."""
    c = torch.linspace(0, 1, 64)
    rows = []
    for freq in (1.0, 1e4):
        rows += [torch.sin(c * freq), torch.cos(c * freq)]
    y = torch.stack(rows)[:, :, None].expand(4, 64, 64)
    x = torch.stack(rows)[:, None, :].expand(4, 64, 64)
    return torch.cat([y, x])


def random_state(shapes: dict, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=gen) * 0.2 for k, s in shapes.items()}
    if "pos_embedding.positional_embedding" in state:
        state["pos_embedding.positional_embedding"] = position_map()
    return state


# --- the official forward passes, written out from silo.md §2 -----------------------------


def preserve_reference(p: dict, z: torch.Tensor, sigma: float) -> torch.Tensor:
    k = torch.arange(64, dtype=torch.float32)
    args = (sigma / 0.1) * torch.exp(-math.log(1e4) * k / 63)
    emb = torch.zeros(1, 128)
    emb[0, 0::2], emb[0, 1::2] = torch.sin(args), torch.cos(args)

    def block(prefix: str, x: torch.Tensor) -> torch.Tensor:
        c = p[f"{prefix}.conv1.bias"].numel()
        skip = (
            F.conv2d(x, p[f"{prefix}.skip_conv.weight"], p[f"{prefix}.skip_conv.bias"])
            if f"{prefix}.skip_conv.weight" in p
            else x
        )
        h = F.conv2d(x, p[f"{prefix}.conv1.weight"], p[f"{prefix}.conv1.bias"], padding=1)
        h = F.group_norm(h, min(8, c), p[f"{prefix}.norm1.weight"], p[f"{prefix}.norm1.bias"])
        h = (
            F.silu(h)
            + F.linear(emb, p[f"{prefix}.noise_proj.weight"], p[f"{prefix}.noise_proj.bias"])[
                :, :, None, None
            ]
        )
        h = F.conv2d(h, p[f"{prefix}.conv2.weight"], p[f"{prefix}.conv2.bias"], padding=1)
        h = F.group_norm(h, min(8, c), p[f"{prefix}.norm2.weight"], p[f"{prefix}.norm2.bias"])
        return F.silu(h + skip)  # fmt: skip

    color = F.silu(F.conv2d(z, p["initial_proj.0.weight"], p["initial_proj.0.bias"]))
    x = torch.cat([z, p["pos_embedding.positional_embedding"][None]], dim=1)
    x = F.conv2d(x, p["initial_conv.weight"], p["initial_conv.bias"], padding=1)
    skips = []
    for i in range(3):
        skips.append(x)
        x = block(f"blocks.{i}", x)
    x = block("bottleneck", x)
    for i in range(3):
        if i:
            x = torch.cat([x, skips[3 - i - 1]], dim=1)
        x = block(f"up_blocks.{i}", x)
    x = F.conv2d(x, p["final_conv.weight"], p["final_conv.bias"], padding=1)
    g = torch.sigmoid(F.linear(emb, p["identity_gate.0.weight"], p["identity_gate.0.bias"]))
    g = g[:, :, None, None]
    return (1 - g) * x + g * color + z * p["skip_scale"]


def cnn_reference(p: dict, z: torch.Tensor, e_sigma: torch.Tensor) -> torch.Tensor:
    h, w = z.shape[-2:]
    s = F.linear(
        e_sigma,
        p["sigma_condition_precondition.0.weight"],
        p["sigma_condition_precondition.0.bias"],
    )
    s = F.linear(
        F.leaky_relu(s),
        p["sigma_condition_precondition.2.weight"],
        p["sigma_condition_precondition.2.bias"],
    )
    s = s.reshape(-1, 1, h, w)  # fmt: skip

    def conv_ln(prefix: str, i: int, x: torch.Tensor, t: bool = False, pad: int = 1):
        conv = F.conv_transpose2d if t else F.conv2d
        x = conv(x, p[f"{prefix}.{i}.weight"], p[f"{prefix}.{i}.bias"], padding=pad)
        ln = p[f"{prefix}.{i + 1}.weight"]
        return F.relu(F.layer_norm(x, ln.shape, ln, p[f"{prefix}.{i + 1}.bias"]))

    enc = torch.cat([z, s], dim=1)
    for i in range(4):
        enc = conv_ln("encoder", 3 * i, enc)
    dec = enc
    for i in range(3):
        dec = conv_ln("decoder", 3 * i, dec, t=True)
    adj = conv_ln("adjust_encoding", 0, torch.cat([enc, s], dim=1), pad=0)
    x = conv_ln("processing", 0, dec + adj)
    return F.conv2d(x, p["processing.3.weight"], p["processing.3.bias"], padding=1)


def import_cli(state, tmp_path: Path, prior: str, variant: str, deg: str = "sr4", wrap=False):
    source = tmp_path / f"official_{variant}.pt"
    torch.save({"aggregation_network": state} if wrap else state, source)
    out = tmp_path / "ops"
    result = runner.invoke(
        app,
        ["import-operator", str(source), "--prior", prior, "--deg", deg, "--variant", variant,
         "--out", str(out)],
    )  # fmt: skip
    return result, source, out


def test_preserve_import_computes_the_official_function(tiny_sd, tiny_prior, tmp_path):
    state = random_state(official_preserve_shapes(), seed=0)
    result, source, out = import_cli(state, tmp_path, str(tiny_sd), "preserve")
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.pt")
    assert path.name.endswith("__sr4_factor-4__preserve.pt")
    payload = read_checkpoint(path)
    provenance = payload["metadata"]["source"]
    assert provenance["file"] == source.name
    assert provenance["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    net = build_network(payload["metadata"]["architecture"], tiny_prior)
    net.load_state_dict(payload["state_dict"])
    z = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(z, 0.02), preserve_reference(state, z, 0.02), **TOL)


TOL = {"atol": 1e-4, "rtol": 1e-4}


def test_cnn_import_computes_the_official_function(tiny_sd, tiny_prior, tmp_path):
    c, h, w = tiny_prior.latent_shape
    unet = tiny_prior.modules()["unet"]
    emb = unet.time_embedding.linear_2.out_features
    state = random_state(official_cnn_shapes(h, w, emb, c), seed=2)
    result, _, out = import_cli(state, tmp_path, str(tiny_sd), "cnn")
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*__noise-cnn.pt")
    payload = read_checkpoint(path)
    net = build_network(payload["metadata"]["architecture"], tiny_prior)
    net.load_state_dict(payload["state_dict"])
    z = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # e_sigma: the UNet's time MLP at (sigma / 0.1) * 999 (silo.md §1.2)
        s = torch.tensor([0.02 / 0.1 * 999] * 2)
        e_sigma = unet.time_embedding(unet.time_proj(s).to(z.dtype))
        torch.testing.assert_close(net(z, 0.02), cnn_reference(state, z, e_sigma), **TOL)


def test_readout_import_places_every_official_tensor(tiny_sd, tiny_prior, tmp_path):
    from operators.latent.readout import feature_channels

    c, h, w = tiny_prior.latent_shape
    unet = tiny_prior.modules()["unet"]
    emb = unet.time_embedding.linear_2.out_features
    state = random_state(official_readout_shapes(feature_channels(unet), h, w, emb), seed=4)
    result, _, out = import_cli(state, tmp_path, str(tiny_sd), "readout", wrap=True)
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*__readout.pt")
    ours = read_checkpoint(path)["state_dict"]
    # the correspondence, written out: official Conv2d-with-norm = our conv + GroupNorm
    expected = {
        "sigma_emb_linear.weight": "sigma_linear.weight",
        "sigma_emb_norm.bias": "sigma_norm.bias",
        "mixing_weights": "mixing",
        "output_head.4.weight": "head.4.weight",
        "bottleneck_layers.3.conv1.weight": "blocks.3.conv1.weight",
        "bottleneck_layers.3.conv2.norm.weight": "blocks.3.norm2.weight",
        "bottleneck_layers.0.conv3.norm.bias": "blocks.0.norm3.bias",
        "bottleneck_layers.2.shortcut.weight": "blocks.2.shortcut.0.weight",
        "bottleneck_layers.2.shortcut.norm.weight": "blocks.2.shortcut.1.weight",
        "bottleneck_layers.1.emb_layers.bias": "blocks.1.emb.bias",
    }
    for official, name in expected.items():
        assert torch.equal(ours[name], state[official]), official
    assert len(ours) == len(state)
    # and the whole network computes the official readout (bottlenecks without emb, §8)
    from operators.latent.readout import UNetFeatureReader

    payload = read_checkpoint(path)
    assert payload["metadata"]["architecture"]["timestep_emb"] is False
    net = build_network(payload["metadata"]["architecture"], tiny_prior)
    net.load_state_dict(ours)
    z = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        with UNetFeatureReader(unet).capture() as features:
            tiny_prior.eps(z, torch.tensor([500]))
        s = torch.tensor([0.02 / 0.1 * 999])
        e_sigma = unet.time_embedding(unet.time_proj(s).to(z.dtype))
        expected = readout_reference(state, features.maps, e_sigma, (h, w))
        torch.testing.assert_close(net(features, 0.02), expected, **TOL)


def readout_reference(p: dict, maps: list, e_sigma: torch.Tensor, size) -> torch.Tensor:
    def conv_gn(prefix: str, x: torch.Tensor, pad: int = 0) -> torch.Tensor:
        x = F.conv2d(x, p[f"{prefix}.weight"], padding=pad)
        return F.group_norm(x, 32, p[f"{prefix}.norm.weight"], p[f"{prefix}.norm.bias"])

    s = F.linear(e_sigma, p["sigma_emb_linear.weight"], p["sigma_emb_linear.bias"])
    s = s.reshape(-1, 1, *size)
    s = F.layer_norm(s, s.shape[1:], p["sigma_emb_norm.weight"], p["sigma_emb_norm.bias"])
    weights = torch.softmax(p["mixing_weights"], dim=0)
    mixed = 0
    for i, fmap in enumerate(maps):
        x = F.interpolate(fmap, size=size, mode="bilinear", align_corners=False)
        x = torch.cat([x, s], dim=1)
        b = f"bottleneck_layers.{i}"
        out = F.relu(conv_gn(f"{b}.conv1", x))
        out = F.relu(conv_gn(f"{b}.conv2", out, pad=1))
        out = F.relu(conv_gn(f"{b}.conv3", out) + conv_gn(f"{b}.shortcut", x))
        mixed = mixed + weights[i] * out
    x = torch.cat([mixed, s], dim=1)
    x = F.silu(F.conv2d(x, p["output_head.0.weight"], p["output_head.0.bias"], padding=1))
    x = F.silu(F.conv2d(x, p["output_head.2.weight"], p["output_head.2.bias"], padding=1))
    return F.conv2d(x, p["output_head.4.weight"], p["output_head.4.bias"])


def test_imported_operator_is_found_by_bench_run(tiny_sd, tmp_path):
    import numpy as np
    from PIL import Image

    state = random_state(official_preserve_shapes(), seed=5)
    result, _, out = import_cli(state, tmp_path, str(tiny_sd), "preserve")
    assert result.exit_code == 0, result.output
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(photos / "a.png")
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", "--prior", str(tiny_sd), "--solvers", "silo", "--deg", "sr4", "--steps", "2",
         "--data", str(photos), "--operators", str(out), "--out", str(run)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(next((run / "records").glob("*.json")).read_text())
    assert record["status"] == "ok"
    (path,) = out.glob("*.pt")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    config = json.loads((run / "config.json").read_text())
    (artifacts,) = config["solvers"][0]["artifacts"].values()
    assert artifacts == {"latent_operator": f"{path.name}@{digest}"}


@pytest.mark.parametrize(
    ("variant", "mangle", "message"),
    [
        ("cnn", lambda s: s, "does not have the official SILO 'cnn' layout"),
        ("preserve", lambda s: {k: v for k, v in s.items() if k != "final_conv.bias"}, "missing"),
        (
            "preserve",
            lambda s: {**s, "initial_conv.weight": torch.zeros(48, 13, 3, 3)},
            "wrong shape: initial_conv.weight [48, 13, 3, 3]",
        ),
        (
            "preserve",
            lambda s: {**s, "pos_embedding.positional_embedding": torch.zeros(8, 64, 64)},
            "position map",
        ),
        ("rg", lambda s: s, "unknown --variant 'rg'; valid: cnn, preserve, readout"),
    ],
)
def test_wrong_layout_is_a_clear_error(tiny_sd, tmp_path, variant, mangle, message):
    state = mangle(random_state(official_preserve_shapes(), seed=6))
    result, _, out = import_cli(state, tmp_path, str(tiny_sd), variant)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output and not out.exists()


def test_not_a_state_dict_is_a_clear_error(tiny_sd, tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    result = runner.invoke(
        app, ["import-operator", str(bad), "--prior", str(tiny_sd), "--deg", "sr4",
              "--variant", "preserve"],
    )  # fmt: skip
    assert result.exit_code == 2 and "is not a readable PyTorch state dict" in result.output
