"""The paper's post-processing on every hole shape: thin, tiny, at the borders (issue 11, item 2)."""

import numpy as np
import pytest
from PIL import Image

import glcic_fast
from glcic_fast.cli import main
from glcic_fast.postprocess import poisson_blend, seamless_clone

H = W = 64
THIN = [(1, 1), (1, 10), (10, 1), (2, 2), (2, 64), (64, 2), (3, 3)]


def ramp_image():
    """A smooth image: a good fill of any hole in it is close to the ramp itself."""
    y, x = np.mgrid[0:H, 0:W]
    ramp = np.clip(40 + 2 * x + y, 0, 255).astype(np.uint8)
    return np.dstack([ramp, 255 - ramp, ramp // 2])


def holes(h, w):
    """The hole (h x w) in the middle, in each corner and along the top edge."""
    for y0, x0 in [(30, 30), (0, 0), (H - h, W - w), (0, W - w), (H - h, 0), (0, (W - w) // 2)]:
        m = np.zeros((H, W), bool)
        m[y0 : y0 + h, x0 : x0 + w] = True
        yield m


@pytest.mark.parametrize("h,w", THIN)
def test_thin_holes_blend_to_their_surroundings(h, w):
    # These shapes crashed inside cv2.seamlessClone (vector::_M_default_append for a 1-px
    # box, !fixedSize() for a 2-px box). Now they blend, and the result follows the image:
    # the network's (here absurd) colour cannot survive in a hole thinner than OpenCV's erosion.
    known = ramp_image()
    for hole in holes(h, w):
        completed = known.copy()
        completed[hole] = (255, 0, 128)
        out = poisson_blend(known, completed, hole)
        assert out.shape == known.shape and out.dtype == np.uint8
        assert np.abs(out[hole].astype(int) - known[hole]).max() <= 8


def test_the_callers_hole_pixels_are_never_read():
    # At a border the image is mirrored; the mirrored hole must not leak into the fill.
    known = ramp_image()
    rng = np.random.default_rng(0)
    completed = known.copy()
    for hole in [*holes(10, 20), *holes(1, 1), *holes(2, 64)]:
        completed[hole] = rng.integers(0, 256, (int(hole.sum()), 3))
        black, white = known.copy(), known.copy()
        black[hole], white[hole] = 0, 255
        np.testing.assert_array_equal(poisson_blend(black, completed, hole)[hole], poisson_blend(white, completed, hole)[hole])


@pytest.mark.parametrize("h,w", THIN)
def test_seamless_clone_alone_takes_thin_holes(h, w):
    # The authors-mode path brings its own destination and calls the clone step alone.
    known = ramp_image()
    for hole in holes(h, w):
        out = seamless_clone(np.full_like(known, 200), known, hole)
        assert out.shape == known.shape
        np.testing.assert_array_equal(out[~hole], known[~hole])


@pytest.fixture(scope="module")
def completer(random_network):
    return glcic_fast.load(random_network, backend="torch", device="cpu", postprocess=True)


def test_complete_with_postprocess_on_thin_holes(completer):
    image = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    masks = [m for h, w in [(1, 1), (2, 64), (64, 2), (1, 10), (2, 2)] for m in holes(h, w)]
    outs = completer.complete([image] * len(masks), masks)  # one batched pass: same size
    for out, hole in zip(outs, masks):
        np.testing.assert_array_equal(out[~hole], image[~hole])
        assert np.abs(out[hole].astype(int) - image[hole]).max() > 0  # completed, not left as it was
    as_float = completer.complete(image / 255.0, masks[0])  # post-processing in 8 bits, returned as float
    assert as_float.dtype == np.float64 and np.array_equal(as_float[~masks[0]], image[~masks[0]] / 255.0)


def test_authors_mode_and_cli_postprocess_on_a_one_pixel_hole(random_network, tmp_path):
    image = np.random.default_rng(2).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    hole = np.zeros((40, 52), bool)
    hole[0, 51] = True
    authors = glcic_fast.load(random_network, backend="torch", device="cpu", authors_mode=True, authors_postprocess=True)
    assert authors.complete(image, hole).shape == image.shape  # 40x52: the script's size too
    from glcic_fast import save_checkpoint

    model = tmp_path / "m.safetensors"
    save_checkpoint(random_network, model)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "m.png")
    args = ["complete", str(tmp_path / "a.png"), "--mask", str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png"),
            "--model", str(model), "--backend", "torch", "--postprocess"]
    assert main(args) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png"))[~hole], image[~hole])
