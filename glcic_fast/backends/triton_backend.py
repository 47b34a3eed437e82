"""Triton backend: the BN-folded completion network on our own NHWC convolution kernels.

One kernel launch per layer (``glcic_fast.kernels``), each with bias, activation and the
optional post-activation affine fused in. Weights are re-laid out once, at construction, in
the K-major packed form the kernels read. For each input shape the backend prepares, once:
two ping-pong activation buffers (NHWC, compute dtype) sized for the largest layer, a static
float32 NCHW input and output, and on CUDA a captured CUDA graph of all 17 launches, so a
call is one copy in, one graph replay, one copy out. The first layer reads the float32 NCHW
input directly (layout change and cast fused into its loads) and the last writes float32 NCHW
directly.

Runs on CUDA; on the CPU only under Triton's interpreter (``TRITON_INTERPRET=1`` set before
anything imports Triton), which is slow and meant for tests.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np

from ..folding import FoldedLayer
from ..layers import SIZE_MULTIPLE
from .base import Backend, BackendUnavailable

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _interpreter_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


class _ShapePlan:
    """Everything prepared for one (N, H, W): buffers, the launch list, the CUDA graph."""

    def __init__(self, backend: "TritonBackend", batch: int, height: int, width: int):
        import torch

        device, dtype = backend.device, backend.dtype
        self.input = torch.empty((batch, backend.in_channels, height, width), device=device, dtype=torch.float32)
        self.output = torch.empty((batch, backend.out_channels, height, width), device=device, dtype=torch.float32)
        # Shapes of every intermediate activation (NHWC), to size the ping-pong buffers.
        shapes = []
        h, w = height, width
        for layer in backend.layers[:-1]:
            h, w = backend.output_size(layer, h, w)
            shapes.append((batch, h, w, layer.out_channels))
        largest = max((int(np.prod(s)) for s in shapes), default=1)
        buffers = [torch.empty(largest, device=device, dtype=dtype) for _ in range(2)]
        activations = [buffers[i % 2][: int(np.prod(s))].view(s) for i, s in enumerate(shapes)]

        # Input and output are NCHW float32; their permuted views are logical NHWC tensors.
        sources = [self.input.permute(0, 2, 3, 1)] + activations
        destinations = activations + [self.output.permute(0, 2, 3, 1)]
        # The launch plan's tile per layer (None: the launcher's own choice), and split-K
        # buffers allocated once here, so a captured CUDA graph replays with fixed addresses.
        self.tiles = backend.layer_tiles(batch, height, width)
        self.steps = []
        for params, src, dst, tile in zip(backend.params, sources, destinations, self.tiles):
            workspace = None
            if tile is not None and tile.split_k > 1:
                layer = params["layer"]
                m_total = batch * (src.shape[1] * src.shape[2] if layer.transposed else dst.shape[1] * dst.shape[2])
                workspace = backend._kernels.split_k_buffers(
                    tile.config(), m_total, layer.out_channels, device, parities=4 if layer.transposed else 1)
            self.steps.append((params, src, dst, tile, workspace))
        self.backend = backend
        self.graph: Optional[Any] = None

    def launch_all(self) -> None:
        for params, src, dst, tile, workspace in self.steps:
            self.backend.launch_layer(params, src, dst, tile, workspace)

    def capture(self) -> None:
        """Run once eagerly (compiling, and autotuning if asked, every layer), then capture a CUDA graph."""
        import torch

        self.launch_all()
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.launch_all()
        self.graph = graph

    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.launch_all()


class TritonBackend(Backend):
    """The folded network on ``glcic_fast.kernels``; see the module docstring."""

    name = "triton"
    precisions = ("fp32", "fp16", "bf16")
    devices = ("cuda", "cpu")  # "cpu" only under TRITON_INTERPRET=1 (see unavailable_reason)

    def __init__(
        self,
        layers: Sequence[FoldedLayer],
        device: str = "cuda",
        precision: str = "fp16",
        cuda_graphs: bool = True,
        allow_tf32: bool = False,
        autotune: bool = False,
        plan: str = "default",
    ):
        """layers: ``fold_batchnorm`` output. precision: compute dtype of weights and
        activations (accumulation is fp32 always). allow_tf32: fp32 layers multiply on TF32
        tensor cores instead of exact fp32 FMA. cuda_graphs: capture one graph per input shape.
        autotune: benchmark Triton tile configs for every layer on the first call of each
        shape (slower first call, sometimes faster kernels) instead of the rule-chosen tile.
        plan: the launch plan (``glcic_fast.kernels.plan``): "default" (one rule-chosen tile
        per layer) or "small-batch" (split-K and tiles that fill the GPU at batch 1, an 8-wide
        tile for the 3-channel output, TMA weight loads on sm_90+; chosen by a latency model,
        not yet timed on a GPU, hence not the default).
        """
        super().__init__(layers, device, precision)
        import torch

        from .. import kernels
        from ..kernels import plan as launch_plans

        if plan not in launch_plans.PLANS:
            raise ValueError(f"unknown launch plan {plan!r}; choose from {', '.join(launch_plans.PLANS)}")
        if autotune and plan != "default":
            raise ValueError("autotune=True searches tiles itself; it combines only with plan='default'")
        self.plan = plan
        self._kernels = kernels
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("the triton backend needs at least one layer")
        _check_layers(self.layers)
        self.dtype = getattr(torch, TORCH_DTYPES[precision])
        self.fp32_ieee = not allow_tf32
        self.autotune = autotune
        self.in_channels = self.layers[0].in_channels
        self.out_channels = self.layers[-1].out_channels
        self.params = [self._prepare(layer) for layer in self.layers]
        self.use_graphs = cuda_graphs and device == "cuda"
        self._plans: dict[tuple[int, int, int], _ShapePlan] = {}

    @classmethod
    def unavailable_reason(cls, device: str) -> Optional[str]:
        try:
            import torch
            import triton  # noqa: F401
        except ImportError as e:
            return f"Triton is not installed ({e}); pip install 'glcic-fast[triton]' (needs a CUDA GPU)"
        if device == "cpu":
            if not _interpreter_requested():
                return (
                    "Triton kernels need a CUDA GPU; on the CPU they run only in Triton's (slow, test-only) "
                    "interpreter, enabled by setting TRITON_INTERPRET=1 before Python starts. Use device='cuda', "
                    "or the onnxruntime / torch backend on the CPU"
                )
            from ..kernels import INTERPRETER_MODE

            if not INTERPRETER_MODE:
                return (
                    "TRITON_INTERPRET=1 was set after glcic_fast.kernels had been imported in compiled mode; "
                    "set it before anything imports Triton (e.g. in the environment)"
                )
            return None
        if device == "cuda" and not torch.cuda.is_available():
            return "no CUDA GPU is visible to PyTorch (Triton kernels need one; TRITON_INTERPRET=1 runs them on the CPU for tests)"
        return None

    def _prepare(self, layer: FoldedLayer) -> dict:
        """Device-resident, re-laid-out parameters of one layer (done once)."""
        import torch

        k = self._kernels
        device = self.device
        pack = k.pack_transposed_weight if layer.transposed else k.pack_weight
        params = {
            "layer": layer,
            "weight": pack(layer.weight.float(), dtype=self.dtype, device=device),
            "bias": layer.bias.to(device=device, dtype=torch.float32).contiguous(),
            "post_scale": None,
            "post_shift": None,
        }
        if layer.post_scale is not None and layer.post_shift is not None:
            params["post_scale"] = layer.post_scale.to(device=device, dtype=torch.float32).contiguous()
            params["post_shift"] = layer.post_shift.to(device=device, dtype=torch.float32).contiguous()
        return params

    def output_size(self, layer: FoldedLayer, h: int, w: int) -> tuple[int, int]:
        if layer.transposed:
            return 2 * h, 2 * w
        size = self._kernels.conv_output_size
        return (
            size(h, layer.kernel, layer.stride, layer.dilation, layer.padding),
            size(w, layer.kernel, layer.stride, layer.dilation, layer.padding),
        )

    def layer_tiles(self, batch: int, height: int, width: int) -> list:
        """The launch plan's ``plan.Tile`` per layer at this input shape; None where the
        launcher chooses itself (autotuning, and the default plan in the interpreter, which
        uses wide interpreter tiles for speed)."""
        from ..kernels import plan as launch_plans
        from ..kernels.conv2d import _sm_count

        if self.autotune or (self.plan == "default" and self._kernels.INTERPRETER_MODE):
            return [None] * len(self.layers)
        element_bytes = self.dtype.itemsize
        shapes = launch_plans.layer_shapes(self.layers, batch, height, width, element_bytes)
        if self._kernels.INTERPRETER_MODE:
            sms = launch_plans.H200_SMS
        else:
            import torch

            sms = _sm_count(torch.device(self.device).index or torch.cuda.current_device())
        tma = launch_plans.tma_available(self.device)
        return [tile for _, tile in launch_plans.network_plan(shapes, element_bytes, self.plan, sms, tma, self.fp32_ieee)]

    def launch_layer(self, params: dict, src, dst, tile=None, workspace=None) -> None:
        """One layer: ``src`` (N, H, W, Cin) -> ``dst`` (N, H', W', Cout), logical NHWC views,
        with ``tile`` (a ``plan.Tile``, or None for the launcher's choice)."""
        layer: FoldedLayer = params["layer"]
        common = dict(
            config=tile.config() if tile is not None else None,
            workspace=workspace,
            activation=layer.activation,
            post_scale=params["post_scale"],
            post_shift=params["post_shift"],
            out=dst,
            fp32_ieee=self.fp32_ieee,
            autotune=self.autotune,
        )
        if layer.transposed:
            self._kernels.conv_transpose2d_nhwc(src, params["weight"], params["bias"], **common)
        else:
            self._kernels.conv2d_nhwc(
                src, params["weight"], params["bias"], kernel=layer.kernel, stride=layer.stride,
                dilation=layer.dilation, padding=layer.padding, **common,
            )

    def _plan(self, batch: int, height: int, width: int) -> _ShapePlan:
        key = (batch, height, width)
        plan = self._plans.get(key)
        if plan is None:
            plan = _ShapePlan(self, batch, height, width)
            if self.use_graphs:
                plan.capture()
            self._plans[key] = plan
        return plan

    def _check_input(self, shape: tuple) -> None:
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"expected input (N, {self.in_channels}, H, W), got shape {tuple(shape)}")
        h, w = shape[2], shape[3]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE or h == 0 or w == 0:
            raise ValueError(
                f"height and width must be positive multiples of {SIZE_MULTIPLE}, got {h}x{w} "
                "(pad the image; glcic_fast.preprocess.network_input does)"
            )
        oh, ow = h, w
        for layer in self.layers:
            oh, ow = self.output_size(layer, oh, ow)
        if (oh, ow) != (h, w):
            raise ValueError(f"these layers map {h}x{w} to {oh}x{ow}; the backend needs a same-size network")

    def run_tensor(self, x):
        """Torch tensor (N, C_in, H, W) float32 on ``self.device`` -> (N, C_out, H, W) float32 there.

        The result is this shape's static output buffer: the next call for the same shape
        overwrites it (copy it to keep it).
        """
        import torch

        self._check_input(tuple(x.shape))
        with torch.inference_mode():
            plan = self._plan(*(int(s) for s in (x.shape[0], x.shape[2], x.shape[3])))
            plan.input.copy_(x)
            plan.run()
        return plan.output

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.device == "cuda":
            t = t.pin_memory().to("cuda", non_blocking=True)
        out = self.run_tensor(t)
        return out.cpu().numpy() if self.device == "cuda" else out.numpy().copy()

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


def _check_layers(layers: Sequence[FoldedLayer]) -> None:
    """Refuse layer lists the kernels do not implement, with what is wrong."""
    previous_out = None
    for index, layer in enumerate(layers, start=1):
        if previous_out is not None and layer.in_channels != previous_out:
            raise ValueError(f"layer {index} takes {layer.in_channels} channels but layer {index - 1} gives {previous_out}")
        previous_out = layer.out_channels
        if layer.activation not in ("relu", "sigmoid"):
            raise ValueError(f"layer {index}: activation {layer.activation!r} is not supported (relu, sigmoid)")
        if (layer.post_scale is None) != (layer.post_shift is None):
            raise ValueError(f"layer {index}: post_scale and post_shift must both be set or both be None")
        if layer.transposed:
            if (layer.kernel, layer.stride, layer.padding, layer.dilation) != (4, 2, 1, 1):
                raise BackendUnavailable(
                    f"layer {index}: the triton kernels implement only 4x4 stride-2 padding-1 transposed convs, "
                    f"got kernel {layer.kernel}, stride {layer.stride}, padding {layer.padding}, dilation {layer.dilation}"
                )
        elif layer.weight.shape[-2] != layer.weight.shape[-1]:
            raise BackendUnavailable(f"layer {index}: only square kernels are supported, got {tuple(layer.weight.shape[-2:])}")
