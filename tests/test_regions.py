"""Large photos: the network sees only what the holes need, with the full image's result (issue 11, item 7)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import glcic_fast
from glcic_fast.layers import COMPLETION_LAYERS, SIZE_MULTIPLE
from glcic_fast.memory import ImageTooLargeError
from glcic_fast.regions import CONTEXT_AFTER, CONTEXT_BEFORE, hole_windows, input_interval, receptive_reach


def thin_network(seed=0, channels=2):
    """GLCIC's layer table (kernels, strides, dilations) with 2 channels, in float64: the same
    dependency structure as the real network, cheap enough to test exactly."""
    gen = torch.Generator().manual_seed(seed)
    layers, cin = [], 4
    for spec in COMPLETION_LAYERS:
        cout = 3 if spec.activation == "sigmoid" else channels
        shape = (cin, cout, spec.kernel, spec.kernel) if spec.transposed else (cout, cin, spec.kernel, spec.kernel)
        layers.append((spec, torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5,
                       torch.rand(cout, generator=gen, dtype=torch.float64)))
        cin = cout

    def run(x):
        for spec, w, b in layers:
            if spec.transposed:
                x = F.conv_transpose2d(x, w, b, spec.stride, spec.padding)
            else:
                x = F.conv2d(x, w, b, spec.stride, spec.padding, spec.dilation)
            x = torch.tanh(x)  # smooth and never flat: every dependency shows
        return x

    return run


def test_the_reach_from_the_layer_table_is_exact():
    REACH_BEFORE, REACH_AFTER = receptive_reach()
    assert (REACH_BEFORE, REACH_AFTER) == (153, 150)
    assert (CONTEXT_BEFORE, CONTEXT_AFTER) == (152, 148)
    net = thin_network()
    x = torch.rand(1, 4, 8, 640, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    base = net(x)
    for p in range(300, 304):  # every position relative to the stride grid
        bumped = x.clone()
        bumped[0, :, 4, p] += 1.0
        changed = set(torch.nonzero((net(bumped) - base).abs().amax(dim=(0, 1, 2)) > 0).flatten().tolist())
        predicted = {o for o in range(640) if input_interval(o, o)[0] <= p <= input_interval(o, o)[1]}
        assert changed == predicted
        assert min(changed) >= p - REACH_AFTER and max(changed) <= p + REACH_BEFORE


def _window_result(net, x, hole, context):
    (win,) = hole_windows(hole, context=context)
    rows, cols = win.slices
    full = net(x)[0, :, hole].numpy()
    part = net(x[:, :, rows, cols])[0, :, hole[rows, cols]].numpy()
    return np.abs(full - part).max(), win


def test_a_window_gives_the_hole_exactly_the_full_images_values_and_a_smaller_one_does_not():
    net = thin_network(seed=2)
    x = torch.rand(1, 4, 48, 720, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    hole = np.zeros((48, 720), bool)
    hole[10:30, 333:351] = True
    diff, win = _window_result(net, x, hole, (CONTEXT_BEFORE, CONTEXT_AFTER))
    assert win.width < 720 / 2 and diff < 1e-12
    for context in ((CONTEXT_BEFORE - SIZE_MULTIPLE, CONTEXT_AFTER), (CONTEXT_BEFORE, CONTEXT_AFTER - SIZE_MULTIPLE)):
        diff, _ = _window_result(net, x, hole, context)
        assert diff > 1e-9, context


def test_windows_cover_each_hole_pixel_once_with_its_context():
    rng = np.random.default_rng(0)
    for trial in range(20):
        h, w = int(rng.integers(50, 900)), int(rng.integers(50, 1300))
        hole = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 6))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            hole[y : y + int(rng.integers(1, 60)), x : x + int(rng.integers(1, 60))] = True
        windows = hole_windows(hole, min_size=(64, 64) if trial % 2 else (0, 0))
        cover = np.zeros((h, w), int)
        for win in windows:
            assert win.top % 4 == 0 and win.left % 4 == 0
            assert win.bottom % 4 == 0 or win.bottom == h
            assert win.right % 4 == 0 or win.right == w
            cover[win.slices] += 1
            inside = hole[win.slices]
            # every hole pixel's whole input interval is in the window, or cut by the image's edge
            for coords, start, end, size in ((win.top + np.nonzero(inside.any(1))[0], win.top, win.bottom, h),
                                             (win.left + np.nonzero(inside.any(0))[0], win.left, win.right, w)):
                for c in coords:
                    lo, hi = input_interval(int(c), int(c))
                    assert (lo >= start or start == 0) and (hi < end or end == size)
        assert cover.max() == 1 and (cover[hole] == 1).all()


def test_far_holes_get_their_own_windows_and_near_ones_share():
    hole = np.zeros((3000, 4000), bool)
    hole[100:120, 100:130] = True
    hole[2800:2810, 3700:3720] = True
    assert len(hole_windows(hole)) == 2
    hole[150:160, 200:210] = True  # near the first one: same window
    assert len(hole_windows(hole)) == 2
    assert sum(win.area for win in hole_windows(hole)) < 0.02 * hole.size
    noise = np.random.default_rng(0).random((600, 800)) < 0.001
    assert [(win.height, win.width) for win in hole_windows(noise)] == [(600, 800)]


def test_windows_do_not_depend_on_how_much_of_the_image_the_hole_scan_covers():
    # hole_windows scans only the cells around the holes; a far hole in the first corner makes
    # it scan from the image's origin, as over the whole image. The other holes' windows, and
    # their order (equal areas keep the order OpenCV labels the groups in), must not change.
    rng, checked = np.random.default_rng(5), 0
    for trial in range(40):
        h, w = int(rng.integers(200, 1200)), int(rng.integers(200, 1200))
        hole = np.zeros((h, w), bool)
        y0, x0 = int(rng.integers(h // 3, h - 100)), int(rng.integers(w // 3, w - 100))
        for _ in range(int(rng.integers(2, 30))):  # small holes, many of one size
            y, x = y0 + int(rng.integers(0, 100)), x0 + int(rng.integers(0, 100))
            hole[y : y + 2, x : x + 2] = True
        context = ((0, 0), (8, 8), (CONTEXT_BEFORE, CONTEXT_AFTER))[trial % 3]
        near = hole_windows(hole, context=context)
        far = hole.copy()
        far[0, 0] = True
        scanned_whole = hole_windows(far, context=context)
        if any(win.top == 0 and win.left == 0 for win in near) or len(scanned_whole) == 1:
            continue  # the corner is in a window already, or the windows make up the image
        assert [win for win in scanned_whole if not (win.top == 0 and win.left == 0)] == near, trial
        checked += 1
    assert checked > 20


@pytest.fixture(scope="module")
def network(random_network):
    return random_network


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_complete_through_windows_equals_the_whole_image(network, backend):
    # Two holes far apart, one touching the right and bottom edges of an image whose width is
    # not a multiple of 4 (the window then pads like the whole image does).
    h, w = 70, 701
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    hole = np.zeros((h, w), bool)
    hole[20:40, 20:44] = True
    hole[30:70, 660:701] = True
    assert len(hole_windows(hole)) == 2
    windows = glcic_fast.load(network, backend=backend, device="cpu")
    whole = glcic_fast.load(network, backend=backend, device="cpu", crop_to_holes=False)
    # Bit-identical here; the guarantee is equality up to float rounding (see glcic_fast.regions).
    np.testing.assert_array_equal(windows.complete(image, hole), whole.complete(image, hole))
    single = hole.copy()
    single[:, 400:] = False
    np.testing.assert_array_equal(windows.complete(image, single, postprocess=True),
                                  whole.complete(image, single, postprocess=True))


def test_a_hole_too_large_for_the_limit_is_refused_with_the_way_out(network):
    completer = glcic_fast.load(network, backend="torch", device="cpu", max_pixels=200 * 200)
    image = np.zeros((700, 900, 3), np.uint8)
    big = np.zeros((700, 900), bool)
    big[100:600, 100:800] = True
    with pytest.raises(ImageTooLargeError, match=r"700x900 region .* max_pixels=40000 .*resize='authors'"):
        completer.complete(image, big)
    small = np.zeros((700, 900), bool)
    small[300:302, 400:402] = True
    with pytest.raises(ImageTooLargeError):  # 2x2 hole: a 304x304 window, still over 200x200
        completer.complete(image, small)
    completer.max_pixels = 320 * 320
    out = completer.complete(image, small)
    np.testing.assert_array_equal(out[~small], image[~small])
    completer.max_pixels = 600 * 600
    assert completer.complete(image, big, resize="authors").shape == image.shape  # the way out it names


def test_under_a_memory_cap_no_raw_allocator_error():
    # ulimit -v: the estimate refuses first; with the estimate bypassed, the allocator's own
    # failure inside the network becomes the same clear error; a small hole still works.
    code = textwrap.dedent('''
        import resource, numpy as np, torch, glcic_fast
        from glcic_fast.memory import ImageTooLargeError
        torch.manual_seed(0)
        c = glcic_fast.load(glcic_fast.CompletionNetwork().eval(), backend="torch", device="cpu")
        img = np.random.default_rng(0).integers(0, 256, (900, 1200, 3), dtype=np.uint8)
        big = np.zeros((900, 1200), bool); big[100:800, 100:1100] = True
        small = np.zeros((900, 1200), bool); small[400:410, 500:510] = True
        c.complete(img[:64, :64], big[:64, :64] | small[:64, :64] | (np.arange(64)[:, None] < 8))
        vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 500 * 2**20, resource.RLIM_INFINITY))
        for label, max_pixels, hole in (("estimate", None, big), ("allocator", 10**9, big), ("small", None, small)):
            c.max_pixels = max_pixels
            try:
                out = c.complete(img, hole)
                print(label, "completed", np.array_equal(out[~hole], img[~hole]))
            except ImageTooLargeError as e:
                print(label, "refused:", e)
    ''')
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert "GiB free here allows" in lines["estimate"] and "--resize authors" in lines["estimate"]
    assert "ran out of memory" in lines["allocator"] and "Downscale" in lines["allocator"]
    assert lines["small"] == "completed True"
