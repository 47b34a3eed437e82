"""Launch plans, the tiles production launches, signal-scaled parity and its negative controls.

On a CPU the kernels run in Triton's interpreter (tests/conftest.py); with a GPU the same
tests run compiled, and ``test_production_tiles_match_torch`` then checks, at 256x256 and
batch 1 / 32, exactly the tiles (wgmma shapes, split-K, TMA) the backend launches.
"""

import functools
import os
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

triton = pytest.importorskip("triton", reason="Triton is not installed")

from glcic_fast.kernels import latency_model, latency_table, parity  # noqa: E402
from glcic_fast.kernels import plan as plans  # noqa: E402

from glcic_fast import kernels  # noqa: E402
from glcic_fast.backends.triton_backend import TritonBackend  # noqa: E402
from glcic_fast.folding import FoldedNetwork  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ON_GPU = torch.cuda.is_available() and not kernels.INTERPRETER_MODE
DEVICE = "cuda" if ON_GPU else "cpu"
needs_kernels = pytest.mark.skipif(
    not ON_GPU and not kernels.INTERPRETER_MODE,
    reason="CPU runs need TRITON_INTERPRET=1 before glcic_fast.kernels is first imported",
)
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _layer_data(shape, dtype, seed, spatial=None):
    """Random input, weight and bias for one layer shape (spatial: override the input size)."""
    g = torch.Generator().manual_seed(seed)
    h, w = spatial or (shape.h_in, shape.w_in)
    x = torch.randn(shape.batch if spatial is None else 1, h, w, shape.cin, generator=g).to(dtype)
    wshape = (shape.cin, shape.cout, 4, 4) if shape.transposed else (shape.cout, shape.cin, shape.kernel, shape.kernel)
    fan_in = shape.cin * (4 if shape.transposed else shape.kernel**2)
    weight = (torch.randn(wshape, generator=g) / fan_in**0.5).to(dtype)
    bias = torch.randn(shape.cout, generator=g) * 0.1
    return x, weight, bias


def _run_layer(shape, tile, x, weight, bias, device, dilation=None, packed=None):
    """Our kernel on one layer with an explicit tile; returns (ours, fp32 reference)."""
    act = shape.activation
    cfg = tile.config()
    if shape.transposed:
        packed = packed if packed is not None else kernels.pack_transposed_weight(weight, device=device)
        y = kernels.conv_transpose2d_nhwc(x.to(device), packed, bias.to(device), activation=act, config=cfg)
        ref = kernels.reference_conv_transpose2d_nhwc(x, weight, bias, activation=act)
    else:
        d = dilation or shape.dilation
        packed = packed if packed is not None else kernels.pack_weight(weight, device=device)
        y = kernels.conv2d_nhwc(x.to(device), packed, bias.to(device), kernel=shape.kernel, stride=shape.stride,
                                dilation=d, padding=d * (shape.kernel - 1) // 2, activation=act, config=cfg)
        ref = kernels.reference_conv2d_nhwc(x, weight, bias, stride=shape.stride, dilation=shape.dilation, activation=act)
    return y, ref


# ------------------------------------------------------------------ the plans themselves


def test_default_plan_fixes_issue_10_item_7():
    shapes = plans.paper_layer_shapes(1, 256)
    tiles = dict(((s.index, t) for s, t in plans.network_plan(shapes, 2, "default")))
    assert tiles[17].block_n == 8  # 3 output channels: the smallest wgmma width, not 16
    assert tiles[1].num_warps == 8  # flattened-K 128-row tiles on 4 warps spilled
    # Transposed layers count their 4 parity sub-grids: layer 15 has 4 x 128 tiles of 128 rows.
    l15 = shapes[14]
    assert tiles[15].block_m == 128 and l15.ctas(tiles[15]) == 512
    for precision_bytes, ieee in ((4, True), (4, False)):
        for s, t in plans.network_plan(plans.paper_layer_shapes(32, 256, 4), 4, "default", fp32_ieee=ieee):
            assert t.block_n <= 64 and t.num_warps == 8, (s.index, t)  # 4-byte 128x256 tiles spilled


def test_small_batch_plan_fills_the_gpu_at_batch_1():
    shapes = plans.paper_layer_shapes(1, 256)
    launches = plans.network_plan(shapes, 2, "small-batch", tma=True)
    for shape, tile in launches:
        steps = shape.k_steps(tile)
        assert steps % tile.split_k == 0, (shape.index, tile)
        if shape.cin == 256 and shape.cout == 256:  # the H/4 layers
            assert shape.ctas(tile) >= 2 * plans.H200_SMS, (shape.index, tile)
            assert tile.split_k > 1
    assert launches[-1][1].block_n == 8
    assert any(t.w_tma for _, t in launches) and not launches[-1][1].w_tma  # 3 channels: rows not 16-byte aligned
    # Without TMA (sm_80, or an old Triton) the same plan uses pointer loads only.
    assert not any(t.w_tma for _, t in plans.network_plan(shapes, 2, "small-batch", tma=False))
    with pytest.raises(ValueError, match="unknown launch plan"):
        plans.network_plan(shapes, 2, "fastest")


def test_latency_table_command_writes_the_table(tmp_path):
    out = tmp_path / "tables" / "table.md"
    assert latency_table.main(["--size", "128", "--batch", "2", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == latency_table.markdown_table(2, 128, "fp16")
    assert [p.name for p in out.parent.iterdir()] == ["table.md"]  # written in place atomically


def test_latency_model_table_is_committed_and_current():
    """The committed 256x256 batch-1 model table is what the model computes today, and shows
    both plans per layer (CTAs, waves, modelled time)."""
    path = REPO / "bench" / "results" / "latency-model-h200-256x256-b1-fp16.md"
    assert path.read_text(encoding="utf-8") == latency_table.markdown_table(1, 256, "fp16")
    rows = {p: latency_table.model_network(1, 256, "fp16", p) for p in plans.PLANS}
    for p, layers in rows.items():
        assert len(layers) == 17 and all(r["model_us"] > latency_model.H200.launch_us for r in layers)
    h4 = [r for r in rows["small-batch"] if r["layer"] in range(5, 13)]
    assert all(r["ctas"] >= 264 for r in h4)
    # A bigger tile cannot need more CTAs; the model's compute term grows with the work.
    shape = plans.paper_layer_shapes(1, 256)[4]
    small, big = plans.Tile(64, 128, 64, 4, 4), plans.Tile(128, 256, 64, 8, 3)
    assert shape.ctas(small) > shape.ctas(big)
    m32 = latency_model.model_launch(plans.paper_layer_shapes(32, 256)[4], small, 2)
    assert m32["compute_us"] > latency_model.model_launch(shape, small, 2)["compute_us"]


# ------------------------------------------------------------------ parity criteria


@needs_kernels
def test_parity_criteria_reject_wrong_kernels():
    """The negative control: a kernel with the wrong dilation, one with the taps in the wrong
    order, and a constant output must all fail the criteria the parity tests use, while the
    right kernel passes (fp16 and bf16)."""
    shape = [s for s in plans.paper_layer_shapes(1, 12) if s.dilation == 4][0]
    tile = plans.Tile(32, 64, 32, 4, 2) if not ON_GPU else plans.Tile(64, 128, 64, 4, 4)
    for precision in ("fp16", "bf16"):
        x, weight, bias = _layer_data(shape, DTYPES[precision], seed=3, spatial=(10, 12))
        right, ref = _run_layer(shape, tile, x, weight, bias, DEVICE)
        assert parity.parity_problems(right, ref, precision) == []
        wrong_dilation, _ = _run_layer(shape, tile, x, weight, bias, DEVICE, dilation=2)
        swapped = kernels.pack_weight(weight.transpose(2, 3).contiguous(), device=DEVICE)  # kw x kh
        wrong_taps, _ = _run_layer(shape, tile, x, weight, bias, DEVICE, packed=swapped)
        constant = torch.full_like(ref, float(ref.mean()))
        for name, bad in (("dilation", wrong_dilation), ("tap order", wrong_taps), ("constant", constant)):
            assert parity.parity_problems(bad, ref, precision), f"{precision}: wrong {name} passed"


def test_network_criteria_reject_a_constant_half():
    """The old absolute bf16 tolerance (0.06) passed a constant 0.5 for a 0.4992 +- 0.0124
    output; the signal-scaled network criteria do not."""
    rng = np.random.default_rng(0)
    ref = 0.4992 + 0.0124 * rng.standard_normal((1, 3, 32, 32))
    assert np.abs(ref - 0.5).max() < 0.06  # what the old tolerance accepted
    for precision in ("fp16", "bf16"):
        assert parity.parity_problems(np.full_like(ref, 0.5), ref, precision, network=True)
        # bf16 rounding of the output alone passes
        rounded = torch.from_numpy(ref).to(DTYPES[precision]).double().numpy()
        assert parity.parity_problems(rounded, ref, precision, network=True) == []


# ------------------------------------------------------------------ production tiles


@functools.lru_cache(maxsize=None)
def _production_launches(plan, batch):
    sms = plans.H200_SMS
    if ON_GPU:
        sms = torch.cuda.get_device_properties(0).multi_processor_count
    shapes = plans.paper_layer_shapes(batch, 256)
    return plans.network_plan(shapes, 2, plan, sms, tma=plans.tma_available(DEVICE))


@needs_kernels
@pytest.mark.parametrize("plan", plans.PLANS)
def test_production_tiles_match_torch(plan):
    """Every (layer, tile) the backend launches at 256x256, batch 1 and batch 32, against
    torch in fp32. On CUDA at the real sizes, so the compiled wgmma / split-K / TMA variants
    are the ones checked; in the interpreter each distinct tile once, on a small image."""
    seen = set()
    for batch in (1, 32):
        for shape, tile in _production_launches(plan, batch):
            key = (shape.transposed, shape.cin, shape.cout, shape.kernel, shape.stride, shape.flat_k, tile)
            if not ON_GPU and key in seen:
                continue
            seen.add(key)
            precision = "bf16" if ON_GPU and shape.index % 2 else "fp16"
            spatial = None if ON_GPU else (4, 6)
            x, weight, bias = _layer_data(shape, DTYPES[precision], seed=shape.index, spatial=spatial)
            y, ref = _run_layer(shape, tile, x, weight, bias, DEVICE)
            parity.assert_parity(y, ref, precision, what=f"{plan} layer {shape.index} b{batch} {tile.label}")


@needs_kernels
def test_small_batch_backend_matches_folded_network():
    """The small-batch plan through the backend (split-K, TMA descriptors, the 8-wide output
    tile), twice on one shape (the split-K counters reset themselves), against fp32."""
    from test_kernels import _network_input, _random_folded_network

    layers = _random_folded_network()
    backend = TritonBackend(layers, device=DEVICE, precision="fp16", plan="small-batch")
    x = _network_input(1, 8, 12, seed=5)
    expected = FoldedNetwork(layers)(torch.from_numpy(x)).detach().numpy()
    first = backend(x)
    again = backend(x)
    tiles = backend._plans[(1, 8, 12)].tiles
    assert any(t.split_k > 1 for t in tiles) and tiles[-1].block_n == 8
    assert any(t.w_tma for t in tiles) == plans.tma_available(DEVICE)
    parity.assert_parity(first, expected, "fp16", network=True)
    np.testing.assert_array_equal(again, first)  # deterministic split-K: same bits every call


def test_backend_rejects_unknown_plan():
    from test_kernels import _random_folded_network

    with pytest.raises(ValueError, match="unknown launch plan"):
        TritonBackend(_random_folded_network(), device=DEVICE, precision="fp16", plan="fastest")
    with pytest.raises(ValueError, match="autotune"):
        TritonBackend(_random_folded_network(), device=DEVICE, precision="fp16", plan="small-batch", autotune=True)


def test_bench_variant_selects_the_small_batch_plan():
    from glcic_fast.bench.variants import parse_variant

    v = parse_variant("triton-small-batch")
    assert v.backend == "triton" and dict(v.options) == {"plan": "small-batch"}
    assert dict(parse_variant("triton-bf16-small-batch").options) == {"plan": "small-batch"}
