"""PIL images come back in their own mode, unchanged outside the hole, or are refused clearly (issue 11, item 4)."""

import numpy as np
import pytest
from PIL import Image

import glcic_fast
from glcic_fast import InputError
from glcic_fast.pil_modes import LUMA_WEIGHTS

H, W = 36, 44


@pytest.fixture(scope="module")
def completer(random_network):
    return glcic_fast.load(random_network, backend="torch", device="cpu")


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def hole():
    m = np.zeros((H, W), bool)
    m[10:24, 12:30] = True
    return m


def luma(pixels):
    return pixels.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)


def outside_kept(result, image, hole):
    assert result.mode == image.mode and result.size == image.size
    np.testing.assert_array_equal(np.asarray(result)[~hole], np.asarray(image)[~hole])


def test_rgb_keeps_its_info(completer, rgb, hole):
    image = Image.fromarray(rgb)
    image.info["icc_profile"] = b"a colour profile"
    out = completer.complete(image, hole)
    outside_kept(out, image, hole)
    np.testing.assert_array_equal(np.asarray(out), completer.complete(rgb, hole))
    assert out.info["icc_profile"] == b"a colour profile"


def test_l_comes_back_l_with_the_fills_luma(completer, rgb, hole):
    grey = rgb[..., 0]
    image = Image.fromarray(grey)
    out = completer.complete(image, hole)
    outside_kept(out, image, hole)
    as_rgb = completer.complete(np.repeat(grey[..., None], 3, axis=2), hole)  # what the network saw
    np.testing.assert_array_equal(np.asarray(out)[hole], np.clip(np.rint(luma(as_rgb[hole])), 0, 255))


def test_16_bit_stays_16_bit(completer, rgb, hole):
    grey8 = rgb[..., 0]
    for mode, dtype in (("I;16", "<u2"), ("I;16B", ">u2")):
        image = Image.frombytes(mode, (W, H), (grey8.astype(np.uint16) * 257).astype(dtype).tobytes())
        out = completer.complete(image, hole)
        outside_kept(out, image, hole)
        filled = np.asarray(out).astype(np.int64)[hole]
        # the same picture in 8 bits gives the same fill, 256 times coarser
        filled8 = np.asarray(completer.complete(Image.fromarray(grey8), hole)).astype(np.int64)[hole]
        assert np.abs(filled - filled8 * 257).max() <= 257
        assert len(np.unique(filled % 257)) > 1  # real 16-bit values, not 8-bit ones scaled


def test_float_f_in_0_1(completer, rgb, hole):
    grey = rgb[..., 0].astype(np.float32) / 255
    image = Image.fromarray(grey, "F")
    out = completer.complete(image, hole)
    outside_kept(out, image, hole)
    filled8 = np.asarray(completer.complete(Image.fromarray(rgb[..., 0]), hole))[hole]
    assert np.abs(np.asarray(out)[hole] * 255 - filled8).max() <= 1.0
    with pytest.raises(InputError, match="float pixels must lie in \\[0, 1\\]"):
        completer.complete(Image.fromarray(grey * 300, "F"), hole)


def test_bilevel(completer, rgb, hole):
    image = Image.fromarray(rgb[..., 0] > 127)
    out = completer.complete(image, hole)
    outside_kept(out, image, hole)


def test_rgba_keeps_alpha_and_fills_it_from_around_the_hole(completer, rgb, hole):
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, :6] = 0  # a transparent strip far from the hole
    alpha[hole] = 0  # the hole was erased: transparent
    image = Image.fromarray(np.dstack([rgb, alpha]))
    out = completer.complete(image, hole)
    outside_kept(out, image, hole)
    result = np.asarray(out)
    np.testing.assert_array_equal(result[..., :3], completer.complete(rgb, hole))
    assert (result[..., 3][hole] == 255).all()  # a hole in an opaque region comes back opaque


def test_la(completer, rgb, hole):
    image = Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA")
    out = completer.complete(image, hole)
    outside_kept(out, image, hole)


def test_palette_and_its_transparency_are_kept(completer, rgb, hole):
    image = Image.fromarray(rgb).quantize(16)
    image.info["transparency"] = 3
    out = completer.complete(image, hole)
    outside_kept(out, image, hole)
    assert out.getpalette() == image.getpalette() and out.info["transparency"] == 3
    indices = np.asarray(out)[hole]
    assert (indices < 16).all() and not (indices == 3).any()  # opaque entries of the palette only
    # each hole pixel takes the entry nearest to the RGB completion
    palette = np.asarray(image.getpalette()[:48]).reshape(16, 3)
    completed = completer.complete(np.asarray(image.convert("RGB")), hole)[hole].astype(np.int64)
    dist = ((completed[:, None] - palette[None]) ** 2).sum(-1)
    dist[:, 3] = 1 << 40
    np.testing.assert_array_equal(dist[np.arange(len(indices)), indices], dist.min(1))


@pytest.mark.parametrize("mode", ["I", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "PA", "La", "RGBa"])
def test_other_modes_are_refused_with_the_conversion_to_make(completer, rgb, hole, mode):
    image = Image.new(mode, (W, H))
    with pytest.raises(InputError, match=f"PIL mode '{mode}' is not supported .*convert"):
        completer.complete(image, hole)


def test_a_batch_of_mixed_modes(completer, rgb, hole):
    images = [Image.fromarray(rgb), Image.fromarray(rgb[..., 0]), Image.fromarray(np.dstack([rgb, rgb[..., 0]]))]
    outs = completer.complete(images, [hole] * 3)
    assert [o.mode for o in outs] == ["RGB", "L", "RGBA"]
    for out, image in zip(outs, images):
        outside_kept(out, image, hole)
