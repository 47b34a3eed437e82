"""The completion API: types in = types out, pixels outside the hole untouched, clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

import glcic_fast
from glcic_fast import InputError
from glcic_fast.preprocess import network_input, read_mask


@pytest.fixture(scope="module")
def completer(random_network):
    return glcic_fast.load(random_network, backend="torch", device="cpu")


def photo(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_pixels_outside_the_hole_are_byte_identical(random_network, backend):
    completer = glcic_fast.load(random_network, backend=backend, device="cpu")
    image = photo(37, 53)  # not multiples of 4: padded, then cropped back
    hole = box(37, 53, 10, 25, 20, 41)
    out = completer.complete(image, hole)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert (out[hole] != image[hole]).any()


def test_result_equals_network_output_in_the_hole(random_network, completer):
    image = photo(32, 40, seed=1)
    hole = box(32, 40, 8, 20, 8, 30)
    x = network_input(image / np.float32(255), hole, completer.mean, "subtract-mean", (32, 40))
    with torch.no_grad():
        net = random_network(torch.from_numpy(x)[None])[0].numpy().transpose(1, 2, 0)
    expected = np.clip(np.rint(net * 255), 0, 255).astype(np.uint8)
    out = completer.complete(image, hole)
    np.testing.assert_array_equal(out[hole], expected[hole])


def test_input_types_round_trip(completer):
    image = photo(30, 22, seed=2)
    hole = box(30, 22, 5, 15, 5, 15)
    as_float = completer.complete(image.astype(np.float64) / 255, hole.astype(np.float32))
    assert as_float.dtype == np.float64 and as_float.shape == image.shape
    np.testing.assert_array_equal(as_float[~hole], image[~hole] / 255)
    pil = completer.complete(Image.fromarray(image), Image.fromarray(hole.astype(np.uint8) * 255))
    assert isinstance(pil, Image.Image) and pil.size == (22, 30)
    np.testing.assert_array_equal(np.asarray(pil), completer.complete(image, hole))
    t = torch.from_numpy(image.transpose(2, 0, 1).copy()).float() / 255
    out = completer.complete(t, torch.from_numpy(hole))
    assert isinstance(out, torch.Tensor) and out.shape == t.shape and out.dtype == torch.float32
    assert torch.equal(out[:, ~torch.from_numpy(hole)], t[:, ~torch.from_numpy(hole)])


def test_batches(completer):
    images = [photo(24, 32, seed=s) for s in range(3)] + [photo(41, 19, seed=9)]
    holes = [box(24, 32, 4, 12, 4 + s, 20) for s in range(3)] + [box(41, 19, 10, 30, 2, 15)]
    batched = completer.complete(images, holes)
    assert [r.shape for r in batched] == [i.shape for i in images]
    for img, hole, got in zip(images, holes, batched):
        np.testing.assert_array_equal(got, completer.complete(img, hole))
    stacked = completer.complete(np.stack(images[:3]), np.stack(holes[:3]))
    assert stacked.shape == (3, 24, 32, 3)
    np.testing.assert_array_equal(stacked[1], batched[1])


@pytest.mark.parametrize(
    "mask,message",
    [
        (np.zeros((20, 20), bool), "no hole pixels"),
        (np.ones((20, 20), bool), "every pixel is a hole"),
        (np.zeros((20, 21), bool), "does not match"),
        (np.full((20, 20), 77, np.uint8), "not binary"),
        (np.full((20, 20), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_masks(completer, mask, message):
    with pytest.raises(InputError, match=message):
        completer.complete(photo(20, 20), mask)


def test_bad_images(completer):
    hole = box(20, 20, 5, 10, 5, 10)
    with pytest.raises(InputError, match="HxWx3"):
        completer.complete(np.zeros((20, 20, 4), np.uint8), hole)
    with pytest.raises(InputError, match="NaN"):
        completer.complete(np.full((20, 20, 3), np.nan, np.float32), hole)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        completer.complete(np.full((20, 20, 3), 3.0, np.float32), hole)
    with pytest.raises(InputError, match="list of masks"):
        completer.complete([photo(20, 20)], hole)


def test_mask_encodings_and_threshold():
    shape = (6, 6)
    ref = box(6, 6, 1, 4, 2, 5)
    for mask in (ref, ref.astype(np.uint8), ref.astype(np.uint8) * 255, ref.astype(np.float32)):
        np.testing.assert_array_equal(read_mask(mask, shape), ref)
    grey = ref.astype(np.float32) * 0.5 + 0.1  # 0.1 outside, 0.6 inside
    np.testing.assert_array_equal(read_mask(grey, shape, threshold=0.2), ref)
    grey_u8 = np.where(ref, 200, 40).astype(np.uint8)  # 40/255 < 0.2 <= 200/255
    np.testing.assert_array_equal(read_mask(grey_u8, shape, threshold=0.2), ref)


def test_postprocess_keeps_known_pixels(completer):
    image = photo(48, 64, seed=4)
    hole = box(48, 64, 0, 20, 30, 64)  # touches two borders
    out = completer.complete(image, hole, postprocess=True)
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert not np.array_equal(out, completer.complete(image, hole))


def test_load_errors(tmp_path, monkeypatch):
    from glcic_fast import resolve

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(glcic_fast.CheckpointError, match="bad.safetensors"):
        glcic_fast.load(bad)
    with pytest.raises(glcic_fast.CheckpointError, match="no such"):
        glcic_fast.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="unknown backend"):
        glcic_fast.load(glcic_fast.CompletionNetwork(), backend="nope")
    with pytest.raises(glcic_fast.CheckpointError, match="import-weights"):
        glcic_fast.load(tmp_path / "model.t7")
    monkeypatch.setattr(resolve, "DEFAULT_MODEL", tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="packaged default model is missing"):
        glcic_fast.load()


def test_gpu_only_backend_without_gpu_is_a_clear_error(random_network):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(glcic_fast.backends.BackendUnavailable, match="no CUDA GPU"):
        glcic_fast.load(random_network, backend="torch", device="cuda")


# ---------------------------------------------------------------- empty batches, unreadable tensors (issue 11, item 10)


def test_an_empty_batch_comes_back_as_an_empty_batch_of_the_callers_type(completer):
    assert completer.complete([], []) == []
    empty = completer.complete(np.zeros((0, 20, 24, 3), np.uint8), np.zeros((0, 20, 24), bool))
    assert isinstance(empty, np.ndarray) and empty.shape == (0, 20, 24, 3) and empty.dtype == np.uint8
    as_float = completer.complete(np.zeros((0, 8, 8, 3), np.float32), [])
    assert as_float.shape == (0, 8, 8, 3) and as_float.dtype == np.float32
    tensor = completer.complete(torch.zeros(0, 3, 20, 24, dtype=torch.float16), torch.zeros(0, 20, 24, dtype=torch.bool))
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (0, 3, 20, 24) and tensor.dtype == torch.float16
    with pytest.raises(InputError, match="got 0 images but 1 masks"):
        completer.complete(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((1, 8, 8), bool))


def test_a_batch_needs_one_mask_per_image(completer):
    with pytest.raises(InputError, match="a batch of 2 images needs 2 masks"):
        completer.complete(np.stack([photo(20, 20)] * 2), box(20, 20, 5, 10, 5, 10))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_tensors_without_readable_values_are_refused_clearly(completer):
    image = torch.from_numpy(photo(20, 20).transpose(2, 0, 1).copy()).float() / 255
    hole = torch.from_numpy(box(20, 20, 5, 10, 5, 10))
    cases = [
        (torch.empty(3, 20, 20, device="meta"), hole, "image: a tensor on the meta device has no values"),
        (torch.empty(2, 3, 20, 20, device="meta"), [hole, hole], "image: a tensor on the meta device"),
        (image.to_sparse(), hole, "image: sparse_coo tensors are not supported; pass a dense tensor"),
        (image, hole.to_sparse(), "mask: sparse_coo tensors are not supported"),
        (image[None], hole[None].to_sparse(), "mask: sparse_coo tensors"),
        (image, torch.empty(20, 20, device="meta"), "mask: a tensor on the meta device"),
        (image[0].to_sparse_csr(), hole, "image: sparse_csr tensors are not supported"),  # CSR is 2-D only
    ]
    for img, mask, message in cases:
        with pytest.raises(InputError, match=message):
            completer.complete(img, mask)


# ---------------------------------------------------------------- arguments checked where they enter (review mend)


@pytest.mark.parametrize("threshold,message", [(5, r"must be in \(0, 1\]"), (0, r"must be in \(0, 1\]"),
                                               (float("nan"), r"must be in \(0, 1\]"), ("x", "must be a number"),
                                               ("0.2", "must be a number"), (True, "must be a number")])
def test_a_bad_mask_threshold_is_refused_at_load_init_and_complete(random_network, completer, threshold, message):
    with pytest.raises(ValueError, match=f"mask_threshold {message}"):
        glcic_fast.load(random_network, backend="torch", device="cpu", mask_threshold=threshold)
    with pytest.raises(ValueError, match=f"mask_threshold {message}"):
        glcic_fast.Completer(completer.backend, completer.mean, mask_threshold=threshold)
    image, hole = photo(20, 20), box(20, 20, 5, 10, 5, 10)
    for mask in (hole, hole.astype(np.uint8) * 255):  # a bool mask never reads the threshold
        with pytest.raises(ValueError, match=f"mask_threshold {message}"):
            completer.complete(image, mask, mask_threshold=threshold)
    assert completer.complete(image, hole, mask_threshold=1).shape == image.shape  # an int in range is a threshold


def test_an_unknown_precision_or_device_is_a_clear_error(random_network):
    with pytest.raises(ValueError, match="precision must be 'auto' or one of fp32, fp16, bf16, int8, got 'fp8'"):
        glcic_fast.load(random_network, precision="fp8")
    for device in (None, 0):
        with pytest.raises(ValueError, match=f"device must be 'auto', 'cpu' or 'cuda', got {device!r}"):
            glcic_fast.load(random_network, device=device)
    # "auto" names what each backend lacks, never "None" for one that runs but not at this precision
    with pytest.raises(glcic_fast.backends.BackendUnavailable, match="no backend can run at precision fp8 on cpu") as e:
        glcic_fast.backends.resolve("auto", "cpu", "fp8")
    assert "None" not in str(e.value) and "onnxruntime: runs fp32/fp16/int8 only" in str(e.value)


def test_gpu_memory_is_asked_of_torch_only_for_backends_that_allocate_through_it(monkeypatch):
    from glcic_fast.memory import free_bytes

    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: asked.append(device) or (6 << 30, 8 << 30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 << 30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 << 30)
    assert free_bytes("cuda", "torch") == free_bytes("cuda", "triton") == 7 << 30
    assert asked == [torch.device("cuda")] * 2  # the backend's device
    for other in ("tensorrt", "onnxruntime"):
        assert free_bytes("cuda", other) is None  # unknown: their allocators are not torch's
    assert len(asked) == 2
