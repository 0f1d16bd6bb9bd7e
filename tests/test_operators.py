"""Tests for operators/: each operator against an independent reference (scipy, PIL, libjpeg)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch
from PIL import Image

from operators import (
    DEGRADATIONS,
    BicubicDownsample,
    Degradation,
    GaussianBlur,
    build_degradation,
    list_degradations,
    measure,
    parse_spec,
    sigma_01_to_pm1,
)
from operators.blur import gaussian_kernel
from operators.resize import downsample_matrix

NAMES = ["inpaint", "inpaint-random", "blur", "sr4", "sr8", "jpeg"]


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with seed."""
    return torch.Generator().manual_seed(seed)


def rand_image(size: int, batch: int = 1, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Uniform noise in [-1, 1] of shape (batch, 3, size, size)."""
    return torch.rand(batch, 3, size, size, generator=gen(seed), dtype=dtype) * 2 - 1


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Euclidean inner product <a, b>."""
    return float((a * b).sum())


# ---------------------------------------------------------------- blur


@pytest.mark.parametrize(("sigma", "size"), [(3.0, 61), (2.0, 31), (3.0, 15), (0.7, 5)])
def test_blur_kernel_equals_scipy_filtered_delta(sigma, size):
    # (3, 15): the radius 12 exceeds the grid's half-width, so scipy's reflections count too.
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    expected = scipy.ndimage.gaussian_filter(delta, sigma)
    np.testing.assert_allclose(gaussian_kernel(sigma, size).numpy(), expected, rtol=0, atol=1e-12)


def test_blur_forward_equals_scipy_gaussian_filter():
    # scipy's 'mirror' mode is numpy's 'reflect' = torch's reflection padding.
    x = rand_image(64, batch=2)
    y = build_degradation("blur", 64).forward(x)
    expected = np.stack(
        [
            [scipy.ndimage.gaussian_filter(x[b, c].numpy(), 3.0, mode="mirror") for c in range(3)]
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(y.numpy(), expected, rtol=0, atol=1e-12)


def test_blur_trimmed_equals_untrimmed_official_form():
    # Official form: the full 61 x 61 scipy kernel after ReflectionPad2d(30), depthwise.
    delta = np.zeros((61, 61))
    delta[30, 30] = 1.0
    full = scipy.ndimage.gaussian_filter(delta, 3.0)
    x = rand_image(64, seed=1)
    expected = np.stack(
        [
            scipy.signal.correlate(np.pad(x[0, c].numpy(), 30, mode="reflect"), full, "valid")
            for c in range(3)
        ]
    )[None]
    op = GaussianBlur.build(64)
    assert op.kernel.shape == (25, 25)
    np.testing.assert_allclose(op.forward(x).numpy(), expected, rtol=0, atol=1e-12)


def test_blur_small_images():
    assert GaussianBlur.build(16).forward(rand_image(16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="reflection padding"):
        GaussianBlur.build(12)
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur.build(64, size=60)


# ---------------------------------------------------------------- super-resolution


def matlab_cubic(t: float) -> float:
    """MATLAB imresize's cubic kernel, written out."""
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def matlab_weights(n_in: int, factor: int) -> np.ndarray:
    """MATLAB imresize(..., 1/factor, 'bicubic') weights with index mirroring, by loops."""
    n_out = n_in // factor
    m = np.zeros((n_out, n_in))
    for x in range(1, n_out + 1):
        u = x * factor + 0.5 * (1 - factor)
        taps = range(math.floor(u - 2 * factor), math.ceil(u + 2 * factor) + 1)
        w = [matlab_cubic((u - j) / factor) / factor for j in taps]
        total = sum(w)
        for j, wj in zip(taps, w, strict=True):
            k = j - 1
            while not 0 <= k < n_in:
                k = -k - 1 if k < 0 else 2 * n_in - 1 - k
            m[x - 1, k] += wj / total
    return m


def test_sr_weights_hand_computed():
    # 8 -> 4, output pixel 1 at u = 1.5: cubic((1.5 - j) / 2) for j = -2..5 is
    # [-3, -9, 29, 111, 111, 29, -9, -3] / 128 (sum 2); j = 0, -1, -2 mirror onto 1, 2, 3.
    row = downsample_matrix(8, 2)[0].numpy()
    expected = np.array([29 + 111, 111 - 9, 29 - 3, -9, -3, 0, 0, 0]) / 256
    np.testing.assert_allclose(row, expected, rtol=0, atol=1e-15)
    interior = downsample_matrix(16, 2)[4].numpy()
    expected = np.zeros(16)
    expected[5:13] = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256
    np.testing.assert_allclose(interior, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("n_in", "factor"), [(32, 4), (64, 8), (12, 3), (8, 2)])
def test_sr_weights_match_loop_reference(n_in, factor):
    m = downsample_matrix(n_in, factor).numpy()
    np.testing.assert_allclose(m, matlab_weights(n_in, factor), rtol=0, atol=1e-14)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-14)


@pytest.mark.parametrize(("size", "factor"), [(64, 4), (128, 8)])
def test_sr_interior_matches_pil_and_torch_antialiased_bicubic(size, factor):
    # PIL and torch (antialias=True) use the same a = -0.5 cubic stretched by the factor and the
    # same pixel-centre mapping, but at the border they clip the kernel and renormalise where
    # MATLAB mirrors the image. An output pixel's footprint has radius 2 * factor input pixels,
    # so from the third output pixel inward it lies inside the image: compare [2:-2] only.
    x = rand_image(size, seed=2)
    y = build_degradation(f"sr{factor}", size).forward(x)
    small = size // factor
    inner_region = (..., slice(2, -2), slice(2, -2))
    ref_torch = torch.nn.functional.interpolate(
        x, size=(small, small), mode="bicubic", antialias=True, align_corners=False
    )
    np.testing.assert_allclose(y[inner_region], ref_torch[inner_region], rtol=0, atol=1e-12)
    assert (y - ref_torch).abs().max() > 1e-6  # the borders do differ
    ref_pil = np.stack(
        [
            np.asarray(
                Image.fromarray(x[0, c].numpy().astype(np.float32)).resize(
                    (small, small), Image.Resampling.BICUBIC
                )
            )
            for c in range(3)
        ]
    )[None]
    np.testing.assert_allclose(y.numpy()[inner_region], ref_pil[inner_region], rtol=0, atol=2e-6)


def test_sr_shapes_and_upsampling():
    x = rand_image(512, batch=2, dtype=torch.float32)
    for name, small in [("sr4", 128), ("sr8", 64)]:
        op = build_degradation(name, 512)
        y = op.forward(x)
        assert y.shape == (2, 3, small, small)
        assert op.upsample_for_encoding(y).shape == (2, 3, 512, 512)
        assert op.pseudo_transpose(y).shape == (2, 3, 512, 512)


def test_sr_constant_image_stays_constant():
    x = torch.full((2, 3, 64, 64), 0.3, dtype=torch.float64)
    for factor in (4, 8):
        op = BicubicDownsample.build(64, factor)
        np.testing.assert_allclose(op.forward(x).numpy(), 0.3, rtol=0, atol=1e-14)
        np.testing.assert_allclose(op.upsample_for_encoding(op.forward(x)).numpy(), 0.3, atol=1e-6)


def test_sr_pseudo_transpose_is_nearest_upsampling():
    op = build_degradation("sr4", 64)
    y = rand_image(16, batch=2, seed=3)
    expected = y.repeat_interleave(4, dim=-2).repeat_interleave(4, dim=-1)
    assert torch.equal(op.pseudo_transpose(y), expected)


def test_sr_size_must_be_divisible():
    with pytest.raises(ValueError, match="divisible"):
        build_degradation("sr8", 60)


def test_sr_name_follows_factor():
    assert build_degradation("sr4:factor=8", 64).name == "sr8"
    assert build_degradation("sr4:factor=8", 64).params == build_degradation("sr8", 64).params


# ---------------------------------------------------------------- JPEG


def astronaut(size: int) -> np.ndarray:
    """A natural RGB image (skimage's astronaut, else a smooth synthetic one), uint8 HWC."""
    try:
        from skimage import data

        img = Image.fromarray(data.astronaut())
    except (ImportError, OSError, ValueError):
        t = np.linspace(0, 1, 512)
        yy, xx = np.meshgrid(t, t, indexing="ij")
        channels = [np.sin(6 * xx + 3 * yy), np.cos(5 * yy - 2 * xx), np.sin(9 * xx * yy)]
        img = Image.fromarray((np.stack(channels, -1) * 100 + 128).astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.Resampling.LANCZOS))


def psnr01(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two images on [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_jpeg_equals_kornia_call():
    from kornia.enhance import jpeg_codec_differentiable

    x = rand_image(48, batch=2, dtype=torch.float32)
    coded = jpeg_codec_differentiable((x + 1) / 2, torch.tensor([10.0]))
    expected = (coded * 2 - 1).clamp(-1, 1)
    assert torch.equal(build_degradation("jpeg", 48).forward(x), expected)


def test_jpeg_close_to_libjpeg():
    img = astronaut(256)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=10)
    libjpeg = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64) / 255
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    ours = ((build_degradation("jpeg", 256).forward(x)[0].permute(1, 2, 0) + 1) / 2).numpy()
    between = psnr01(ours, libjpeg)
    print(
        f"JPEG q10 PSNR kornia vs libjpeg {between:.2f} dB; vs original: kornia "
        f"{psnr01(ours, img / 255):.2f} dB, libjpeg {psnr01(libjpeg, img / 255):.2f} dB"
    )
    assert between > 30.0


def test_jpeg_gradient_flows_and_any_size_works():
    x = rand_image(40, dtype=torch.float32).requires_grad_(True)
    y = build_degradation("jpeg", 40).forward(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_jpeg_has_no_transpose_and_checks_quality():
    op = build_degradation("jpeg:quality=20", 32)
    assert not op.is_linear and op.params == {"quality": 20}
    with pytest.raises(NotImplementedError, match="A\\^T"):
        op.pseudo_transpose(rand_image(32))
    with pytest.raises(ValueError, match="quality"):
        build_degradation("jpeg:quality=0", 32)


# ---------------------------------------------------------------- inpainting masks


def test_center_box_geometry_at_512_and_64():
    for size, lo, hi in [(512, 128, 384), (64, 16, 48)]:
        op = build_degradation("inpaint", size)
        mask = op.forward(torch.ones(1, 3, size, size))[0]
        expected = torch.ones(3, size, size)
        expected[:, lo:hi, lo:hi] = 0
        assert torch.equal(mask, expected)
    assert build_degradation("inpaint", 512).params == {"size": 256}
    mask = build_degradation("inpaint:size=128", 512).mask[0, 0]
    assert mask[192:320, 192:320].sum() == 0 and mask.sum() == 512**2 - 128**2


def test_random_box_within_margin_and_deterministic():
    op = build_degradation("inpaint-random", 512)
    assert op.params == {"size": 256, "margin": 16}
    corners = [op.seeded([gen(s)]).corners[0] for s in range(200)]
    flat = [c for corner in corners for c in corner]
    assert min(flat) >= 16 and max(flat) <= 239
    assert min(flat) < 40 and max(flat) > 215  # spread over the whole range
    assert op.seeded([gen(7)]).corners == op.seeded([gen(7)]).corners
    assert op.seeded([gen(7)]).corners != op.seeded([gen(8)]).corners
    top, left = op.seeded([gen(3)]).corners[0]
    mask = op.seeded([gen(3)]).mask[0, 0]
    assert mask[top : top + 256, left : left + 256].sum() == 0 and mask.sum() == 512**2 - 256**2


def test_random_box_scales_with_image_size():
    op = build_degradation("inpaint-random", 64)
    assert op.params == {"size": 32, "margin": 2}
    flat = [c for s in range(100) for c in op.seeded([gen(s)]).corners[0]]
    assert min(flat) >= 2 and max(flat) <= 64 - 2 - 32 - 1


def test_random_box_per_sample_in_batch():
    op = build_degradation("inpaint-random", 64)
    batch = op.seeded([gen(0), gen(1), gen(2)])
    assert batch.mask.shape == (3, 1, 64, 64)
    x = rand_image(64, batch=3)
    y = batch.forward(x)
    for i in range(3):
        alone = op.seeded([gen(i)])
        assert torch.equal(batch.mask[i], alone.mask[0])
        assert torch.equal(y[i : i + 1], alone.forward(x[i : i + 1]))
    with pytest.raises(ValueError, match="batch"):
        batch.forward(x[:2])


def test_random_box_needs_seeding():
    op = build_degradation("inpaint-random", 64)
    with pytest.raises(RuntimeError, match="seeded"):
        op.forward(rand_image(64))


def test_pseudo_transpose_is_adjoint_on_range_for_masks_only():
    x, u = rand_image(64, seed=4), rand_image(64, seed=5)
    masks = [build_degradation("inpaint", 64), build_degradation("inpaint-random", 64)]
    for op in [masks[0], masks[1].seeded([gen(0)])]:
        v = op.forward(u)
        assert math.isclose(
            inner(op.forward(x), v), inner(x, op.pseudo_transpose(v)), rel_tol=1e-12
        )
    # PSLD's identity "A^T" for blur and nearest upsampling for SR are not adjoints.
    for name in ["blur", "sr4"]:
        op = build_degradation(name, 64)
        v = op.forward(u)
        lhs, rhs = inner(op.forward(x), v), inner(x, op.pseudo_transpose(v))
        assert abs(lhs - rhs) > 0.1 * abs(lhs)


# ---------------------------------------------------------------- noise


def test_measure_is_deterministic_per_generator():
    op = build_degradation("sr4", 64)
    x = rand_image(64, batch=2)
    a = measure(op, x, 0.05, [gen(1), gen(2)])
    b = measure(op, x, 0.05, [gen(1), gen(2)])
    c = measure(op, x, 0.05, [gen(1), gen(3)])
    assert torch.equal(a, b) and torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    assert a.shape == (2, 3, 16, 16)


def test_measure_sigma_zero_is_forward():
    op = build_degradation("blur", 64)
    x = rand_image(64, batch=2)
    assert torch.equal(measure(op, x, 0.0, [gen(0), gen(1)]), op.forward(x))


def test_measure_per_sample_independent_of_batch():
    op = build_degradation("inpaint", 64)
    x = rand_image(64, batch=3)
    y = measure(op, x, 0.1, [gen(10), gen(11), gen(12)])
    for i in range(3):
        assert torch.equal(y[i : i + 1], measure(op, x[i : i + 1], 0.1, [gen(10 + i)]))
    hole = (y - op.forward(x))[:, :, 16:48, 16:48]
    assert abs(float(hole.std()) - 0.1) < 0.01  # noise inside the hole too, unclipped
    with pytest.raises(ValueError, match="generators"):
        measure(op, x, 0.1, [gen(0)])


def test_sigma_convention():
    assert sigma_01_to_pm1(0.01) == 0.02


# ---------------------------------------------------------------- registry and protocol


def test_parse_spec():
    assert parse_spec("sr4") == ("sr4", {})
    assert parse_spec(" blur:sigma=2, size=31 ") == ("blur", {"sigma": "2", "size": "31"})
    for bad in ["blur:sigma", "blur:=2", "blur:sigma=", ":sigma=2", "blur:sigma=1,sigma=2"]:
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_build_with_overrides_converts_types():
    op = build_degradation("blur:sigma=2,size=31", 64)
    assert op.params == {"sigma": 2.0, "size": 31}
    assert type(op.sigma) is float and type(op.size) is int
    assert build_degradation("inpaint:size=128", 512).params == {"size": 128}
    assert build_degradation("inpaint-random:margin=8", 64).params == {"size": 32, "margin": 8}
    assert build_degradation("jpeg:quality=20", 64).params == {"quality": 20}
    assert build_degradation("sr4", 64).params == {"factor": 4}


def test_registry_errors_list_valid_options():
    with pytest.raises(ValueError, match="inpaint, inpaint-random, blur, sr4, sr8, jpeg"):
        build_degradation("deblur", 64)
    with pytest.raises(ValueError, match="valid parameters: size, margin"):
        build_degradation("inpaint-random:sigma=2", 64)
    with pytest.raises(ValueError, match="expects int"):
        build_degradation("blur:size=3.5", 64)
    with pytest.raises(ValueError, match="expects float"):
        build_degradation("blur:sigma=wide", 64)


def test_list_degradations():
    listed = list_degradations()
    assert [name for name, _, _ in listed] == NAMES == list(DEGRADATIONS)
    assert dict((n, p) for n, p, _ in listed)["blur"] == {"sigma": 3.0, "size": 61}
    json.dumps(listed)
    for name, factory in DEGRADATIONS.items():
        assert factory.parameter_names() == list(factory(512).params), name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 3])
def test_protocol_batches_and_gradients(name, batch):
    op = build_degradation(name, 64)
    assert isinstance(op, Degradation) and op.name == name
    seeded = op.seeded([gen(i) for i in range(batch)])
    if name != "inpaint-random":
        assert seeded is op
    x = rand_image(64, batch=batch, dtype=torch.float32).requires_grad_(True)
    y = seeded.forward(x)
    assert y.shape[0] == batch and y.dtype == x.dtype
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert seeded.upsample_for_encoding(y).shape == x.shape
    if op.is_linear:
        assert seeded.pseudo_transpose(y).shape == x.shape
    with pytest.raises(ValueError, match="expected images"):
        seeded.forward(rand_image(32, batch=batch))
