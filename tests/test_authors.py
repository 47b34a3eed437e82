"""``authors_mode``: the authors' inpaint.lua, byte for byte.

Every comparison is against ``authors_reference``, a port of the script written from the Lua and
C sources one sample at a time (it does not call glcic_fast.authors). Both sides feed the same
network the same input, so its outputs are the same and every byte must be. The size x mask
matrix runs the pipeline (``authors.complete_many``, what ``Completer.complete`` calls in
authors mode) on a small random convolutional network to stay fast; the API tests run the
paper's completion network (random weights) through ``load(..., authors_mode=True)``.
"""

import numpy as np
import pytest
import torch
from PIL import Image

import authors_reference as ref
import glcic_fast
from glcic_fast import InputError, authors
from glcic_fast.authors import AuthorsOptions


@pytest.fixture(scope="module")
def completer(random_network):
    return glcic_fast.load(random_network, backend="torch", device="cpu", authors_mode=True)


class SmallNetwork:
    """A random 3x3 conv (4 -> 3 channels) and a sigmoid: a network's contract, cheaply."""

    def __init__(self, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen) * 2)

    def __call__(self, x):
        with torch.no_grad():
            return torch.sigmoid(self.conv(torch.from_numpy(x))).numpy()


SMALL = SmallNetwork()
MEAN = (0.4560, 0.4472, 0.4155)


def photo(h, w, seed=0):
    """Smooth content with noise: shrinking and enlarging both have something to average."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    waves = np.stack([128 + 60 * np.sin(x / 5 + c) + 40 * np.cos(y / 4 - c) for c in range(3)], axis=2)
    return np.clip(waves + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def hole_box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


def mask_of_kind(kind, h, w, seed=0):
    """The same hole as the script would read it from files of different kinds."""
    rng = np.random.default_rng(seed)
    m = hole_box(h, w, h // 4, h // 2 + 3, w // 3, w // 3 + w // 4 + 2)
    noise = rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == "binary":
        return m
    if kind == "bool":
        return m > 0
    if kind == "grey":  # anti-aliased / JPEG-like: values on both sides of 0.2 * 255 = 51
        return np.clip(m * 0.7 + rng.integers(0, 70, (h, w)), 0, 255).astype(np.uint8)
    if kind == "grey16":
        return (m.astype(np.uint16) * 200 + rng.integers(0, 9000, (h, w))).astype(np.uint16)
    if kind == "colour":  # rgb2y weighs the channels differently
        return np.stack([m, (m * 0.3).astype(np.uint8), np.roll(m, 3, axis=1)], axis=2)
    if kind == "grey+alpha":
        return np.stack([m, noise], axis=2)
    if kind == "rgba":
        return np.stack([m, m // 2, m, noise], axis=2)
    if kind == "pil-LA":
        return Image.fromarray(np.stack([m, noise], axis=2), "LA")
    raise ValueError(kind)


def script_run(network, mean, image, mask, maxdim, postproc):
    """The reference script on ``network``: (network input, out.png bytes)."""
    ref.MEAN_FOR_TESTS[:] = mean
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        mask = mask.astype(np.uint8) * 255  # a 1-bit file: libpng expands it to 0/255
    Ip, M, x = ref.script_prepare(image, mask, maxdim)
    res = network(x[None])[0]
    return x, ref.script_output(Ip, M, res, postproc)


# Sizes: (h, w, maxdim). Rounding to a multiple of 4 moves a side by -2..+2 (.5 ties round up).
SIZES = [
    (32, 48, 600),  # no resize at all
    (30, 46, 600),  # 7.5 and 11.5: ties, both enlarged by 2
    (35, 43, 600),  # enlarged by 1 each way
    (38, 41, 600),  # +2 and -1
    (37, 53, 600),  # odd, shrunk by 1
    (45, 61, 40),  # maxdim: 61 -> 40 (29 x 40), then 28 x 40
    (70, 47, 60),  # maxdim on the other axis, and a second shrink step
    (23, 90, 36),  # maxdim to 9 x 36, then 8 x 36
]
KINDS = ["binary", "bool", "grey", "grey16", "colour", "grey+alpha", "rgba", "pil-LA"]


@pytest.mark.parametrize("h,w,maxdim", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_bytes_and_network_input_match_the_script(h, w, maxdim, kind):
    image, mask = photo(h, w, seed=h), mask_of_kind(kind, h, w, seed=w)
    x_script, expected = script_run(SMALL, MEAN, image, mask, maxdim, postproc=False)
    options = AuthorsOptions.for_version("2020", maxdim=maxdim)
    x = authors.network_input(authors.prepare(image, mask, options), MEAN)
    assert x.dtype == np.float32 and x.shape == x_script.shape
    np.testing.assert_array_equal(x.view(np.uint32), x_script.view(np.uint32))  # every bit, zeros' signs too
    (out,) = authors.complete_many(SMALL, MEAN, "subtract-mean", [image], [mask], options)
    assert out.dtype == np.uint8 and out.shape == expected.shape == (x.shape[1], x.shape[2], 3)
    np.testing.assert_array_equal(out, expected)


def test_the_completion_network_through_the_api(completer):
    """load(..., authors_mode=True) end to end, with the paper's network (random weights)."""
    for (h, w), kind in [((30, 46), "grey"), ((37, 53), "colour")]:
        image, mask = photo(h, w, seed=h), mask_of_kind(kind, h, w)
        _, expected = script_run(completer.backend, completer.mean, image, mask, 600, postproc=False)
        np.testing.assert_array_equal(completer.complete(image, mask), expected)
    image, mask = photo(40, 52, seed=9), mask_of_kind("binary", 40, 52)
    _, expected = script_run(completer.backend, completer.mean, image, mask, 600, postproc=True)
    np.testing.assert_array_equal(completer.complete(image, mask, postprocess=True), expected)


def test_scale_matches_the_c_loops():
    """The vectorised image.scale against the sample-by-sample port, bit for bit."""
    rng = np.random.default_rng(0)
    for (h, w), (oh, ow) in [((7, 9), (7, 9)), ((7, 9), (4, 4)), ((30, 40), (31, 43)), ((30, 40), (17, 23)),
                             ((5, 5), (1, 1)), ((1, 6), (4, 8)), ((6, 1), (3, 3)), ((33, 47), (11, 100)),
                             ((100, 7), (3, 7)), ((467, 700), (400, 600)), ((330, 490), (332, 492))]:
        img = rng.integers(0, 256, (3, h, w)).astype(np.float32) * np.float32(1 / 255)
        got = authors.scale_bilinear(img, oh, ow)
        want = ref.image_scale(img, ow, oh)
        assert got.shape == want.shape == (3, oh, ow)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=f"{(h, w)} -> {(oh, ow)}")


@pytest.mark.parametrize("h,w,maxdim,after,net", [
    (467, 700, 600, (400, 600), (400, 600)),
    (330, 490, 600, (330, 490), (332, 492)),  # .5 ties round away from zero
    (880, 44, 600, (600, 30), (600, 32)),
    (1000, 700, 500, (500, 350), (500, 352)),
    (2, 3000, 600, (1, 600), (0, 600)),  # a side of 1 rounds to 0: refused by prepare
])
def test_sizes_follow_the_script(h, w, maxdim, after, net):
    assert authors.script_sizes(h, w, maxdim) == (after, net)


def test_realistic_size_preprocessing_matches():
    """700x467 -> 600x400 and 490x330 -> 492x332 (the sizes in the issue), without the network."""
    rng = np.random.default_rng(5)
    for h, w in [(467, 700), (330, 490)]:
        image, mask = photo(h, w, seed=h), mask_of_kind("grey", h, w)
        ref.MEAN_FOR_TESTS[:] = MEAN
        Ip, M, x_script = ref.script_prepare(image, mask, 600)
        prepared = authors.prepare(image, mask, AuthorsOptions())
        np.testing.assert_array_equal(authors.network_input(prepared, MEAN).view(np.uint32), x_script.view(np.uint32))
        res = rng.random(Ip.shape, dtype=np.float32)
        for post in (False, True):
            out = authors.finish(prepared, res, AuthorsOptions(postprocess=post))
            np.testing.assert_array_equal(out, ref.script_output(Ip, M, res, post))


HOLES = [  # (y0, y1, x0, x1) in a 40x52 image: inside, even/odd sizes, thin, at every edge
    (10, 20, 12, 30), (9, 20, 12, 29), (14, 15, 5, 40), (3, 37, 20, 21),
    (0, 12, 0, 15), (0, 40, 30, 52), (25, 40, 0, 52), (5, 30, 40, 52),
]


@pytest.mark.parametrize("hole", HOLES)
@pytest.mark.parametrize("version", ["2020", "2018"])
def test_postprocessing_matches_the_script_on_opencv31(hole, version):
    image = photo(40, 52, seed=7)
    mask = hole_box(40, 52, *hole)
    options = AuthorsOptions.for_version(version, postprocess=True)
    _, expected = script_run(SMALL, MEAN, image, mask, options.maxdim, postproc=True)
    (out,) = authors.complete_many(SMALL, MEAN, "subtract-mean", [image], [mask], options)
    np.testing.assert_array_equal(out, expected)


def test_load_options(random_network, completer):
    assert completer.authors == AuthorsOptions("2020", 600, False)
    run = glcic_fast.load(random_network, backend="torch", device="cpu", authors_mode=True,
                          authors_version="2018", authors_postprocess=False, authors_maxdim=40)
    assert run.authors == AuthorsOptions("2018", 40, False)
    assert AuthorsOptions.for_version() == AuthorsOptions("2020", 600, False)
    assert AuthorsOptions.for_version("2018") == AuthorsOptions("2018", 500, True)


def test_todays_seamlessclone_agrees_where_it_can():
    """3.1's clone, run by us, against OpenCV's own seamlessClone set up to solve 3.1's problem."""
    import cv2

    rng = np.random.default_rng(1)
    h, w = 40, 52
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    dst = cv2.GaussianBlur(src, (7, 7), 0)
    for y0, y1, x0, x1 in [(10, 20, 12, 30), (9, 20, 12, 29), (14, 15, 5, 40), (20, 40, 30, 52), (0, 12, 0, 15)]:
        mask = hole_box(h, w, y0, y1, x0, x1)
        ours = authors.clone_as_opencv31(src, dst, mask)
        box = np.zeros((h + 2, w + 2), np.uint8)  # 3.1's box: the last row and column left out
        box[1 + y0:y1, 1 + x0:x1] = 255
        box[1, 1] = box[h, w] = 255  # bounding box = the whole image: 3.1's solve region
        pad = lambda a: cv2.copyMakeBorder(a, 1, 1, 1, 1, cv2.BORDER_REFLECT_101)  # noqa: E731
        theirs = cv2.seamlessClone(pad(src), pad(dst), box, (1 + w // 2, 1 + h // 2), cv2.NORMAL_CLONE)[1:-1, 1:-1]
        if y0 > 0 and x0 > 0:
            np.testing.assert_array_equal(ours, theirs)
        else:  # today's function clears the mask's outer frame, so erodes the hole from the edge too
            assert (ours != theirs).any()


def test_blend_centre_on_the_installed_opencv():
    """On OpenCV >= 4 the in-place centre is min + (max - min + 1) // 2; the script's shifts even boxes."""
    import cv2

    rng = np.random.default_rng(2)
    h, w = 40, 50
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    dst = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for y0, y1, x0, x1 in [(10, 19, 12, 23), (10, 20, 12, 24), (10, 19, 12, 24)]:  # inclusive bounds
        mask = hole_box(h, w, y0, y1 + 1, x0, x1 + 1)
        changed = lambda p: np.nonzero((cv2.seamlessClone(src, dst, mask.copy(), p, cv2.NORMAL_CLONE) != dst).any(2))  # noqa: E731
        ys, xs = changed((x0 + (x1 - x0 + 1) // 2, y0 + (y1 - y0 + 1) // 2))
        # the box in place: its outermost rows and columns stay fixed, the inside is blended
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (y0 + 1, y1 - 1, x0 + 1, x1 - 1)
        ys, xs = changed((x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2))  # the script's centre, 0-based
        shift_y, shift_x = (y1 - y0) % 2, (x1 - x0) % 2  # odd max - min: an even box size
        assert (ys.min(), xs.min()) == (y0 + 1 - shift_y, x0 + 1 - shift_x)


def test_result_types(completer):
    image, mask = photo(30, 46, seed=1), mask_of_kind("binary", 30, 46)
    expected = completer.complete(image, mask)
    assert expected.shape == (32, 48, 3)
    pil = completer.complete(Image.fromarray(image), Image.fromarray(mask))
    assert isinstance(pil, Image.Image) and pil.size == (48, 32)
    np.testing.assert_array_equal(np.asarray(pil), expected)
    as_float = completer.complete(image.astype(np.float32) * np.float32(1 / 255), mask > 0)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, expected.astype(np.float32) / 255)
    t = completer.complete(torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(mask))
    assert t.dtype == torch.uint8 and tuple(t.shape) == (3, 32, 48)
    np.testing.assert_array_equal(t.numpy().transpose(1, 2, 0), expected)
    batch = completer.complete([image, photo(31, 47)], [mask, mask_of_kind("grey", 31, 47)])
    np.testing.assert_array_equal(batch[0], expected)
    assert batch[1].shape == (32, 48, 3)


def test_options_and_errors(random_network, completer):
    with pytest.raises(ValueError, match="authors_version"):
        AuthorsOptions.for_version("2019")
    with pytest.raises(ValueError, match="authors_maxdim"):
        AuthorsOptions.for_version(maxdim=1)
    with pytest.raises(ValueError, match="authors_mode"):
        glcic_fast.load(random_network, backend="torch", device="cpu", authors_version="2018")
    with pytest.raises(ValueError, match="authors_postprocess"):
        glcic_fast.load(random_network, backend="torch", device="cpu", authors_mode=True, postprocess=True)
    image = photo(30, 46)
    with pytest.raises(ValueError, match="mask_threshold"):
        completer.complete(image, np.zeros((30, 46), np.uint8), mask_threshold=0.5)
    with pytest.raises(InputError, match="does not match"):
        completer.complete(image, np.zeros((30, 45), np.uint8))
    with pytest.raises(InputError, match="no pixel reaches 0.2"):
        completer.complete(image, np.full((30, 46), 40, np.uint8))  # 40/255 < 0.2 everywhere
    with pytest.raises(InputError, match="rounds to"):
        completer.complete(photo(1, 700), np.ones((1, 700), bool))
    with pytest.raises(InputError, match="HxWx2"):
        completer.complete(image, np.zeros((30, 46, 5), np.uint8))


def test_command_line(random_network, completer, tmp_path):
    """glcic-fast complete --authors-mode reads mask files with their channels, as the script does."""
    from glcic_fast import save_checkpoint
    from glcic_fast.cli import main

    model = tmp_path / "model.safetensors"
    save_checkpoint(random_network, model, source="test")
    image = photo(37, 53, seed=4)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(mask_of_kind("grey+alpha", 37, 53), "LA").save(tmp_path / "m.png")
    out = tmp_path / "out.png"
    args = ["complete", str(tmp_path / "a.png"), "--mask", str(tmp_path / "m.png"), "-o", str(out),
            "--model", str(model), "--backend", "torch", "--authors-mode", "--authors-version", "2018"]
    assert main(args) == 0
    _, expected = script_run(completer.backend, completer.mean, image, mask_of_kind("grey+alpha", 37, 53), 500, postproc=True)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    assert main(args[:-3] + ["--authors-maxdim", "40"]) == 2  # authors options without --authors-mode
