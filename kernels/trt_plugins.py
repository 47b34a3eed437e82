"""Our Triton convolution inside TensorRT engines, as Quickly Deployable Plugins (QDPs).

``glcic-fast build-engine --plugins triton`` replaces the dilated 3x3 convolutions (layers 7-10;
``--plugin-layers h4``: all 256-channel 3x3 layers at H/4, 5-12) with one plugin op each,
``glcic::conv2d_nhwc`` (conv + bias + ReLU), and TensorRT schedules and fuses everything else
as usual. The pieces:

- ``conv2d_nhwc_plugin_kernel``: a thin ``@triton.jit`` entry point around
  ``conv2d.conv2d_nhwc_kernel`` (the same implicit-GEMM kernel the ``triton`` backend runs)
  with the argument order TensorRT's AOT launcher uses: input pointers (x, packed weight,
  bias), then the scalar extras (batch, height, width), then the output pointer. Channel
  counts, kernel size, dilation and activation are compile-time constants, and the tensors
  are contiguous NHWC (TensorRT's ``HWC`` format).
- ``compile_plugin_kernel``: ``triton.compile`` for the build GPU's architecture -> PTX. Triton
  appends two scratch-pointer parameters to every kernel; ours use no scratch memory, so the
  unused parameters are removed from the PTX entry so that the parameter list is exactly what
  TensorRT passes.
- ``register()``: ``trtp.register`` (shape/type: output = input with COUT channels),
  ``trtp.autotune`` (one tactic per tile config in ``PLUGIN_TILES``; I/O formats HWC, weights
  LINEAR), ``trtp.aot_impl`` (compiles the tactic's tile, returns PTX + launch parameters +
  the symbolic batch/height/width). Needs a TensorRT whose ``tensorrt.plugin`` has ``aot_impl`` (checked
  when registering; TensorRT 11 has it).
- ``replace_convs_with_plugins``: the ONNX rewrite. A Conv + Relu pair becomes one node with
  ``op_type="conv2d_nhwc"`` and the string attribute ``plugin_namespace="glcic"`` (how
  TensorRT's ONNX parser finds a plugin), its weight repacked to the kernel's (9*CIN, COUT)
  layout. The other attributes (kernel_size, dilation, activation, in_channels, out_channels)
  become the plugin's attributes.

How the plugin is found at run time:
- Python (``glcic_fast.load("x.plan")``, any TensorRT Python program): nothing to do. An AOT
  plugin's PTX and launch parameters are serialized into the plan and TensorRT launches them
  itself, without calling back into Python. (Our backend still imports this module when it
  can, for TensorRT versions that look the creator up at deserialization.)
- C++ / trtexec: the same: ``trtexec --loadEngine=glcic-triton.plan`` needs no plugin library.
  To *build* without Python, export the rewritten ONNX (``glcic-fast export-onnx --plugins
  triton``) and build it with the C++ plugin library from ``CMakeLists.txt``
  (``libglcic_trt_plugin.so``, the same op id, wrapping the AOT-compiled kernels):
  ``trtexec --onnx=glcic-plugins.onnx --stronglyTyped --staticPlugins=libglcic_trt_plugin.so``;
  an engine built that way needs the library loaded when it runs, too.
- Triton Inference Server: a Python-built plan needs nothing; a plan built with the C++
  plugin needs ``--backend-config=tensorrt,plugins=/path/libglcic_trt_plugin.so`` (or
  ``LD_PRELOAD``). See docs/triton-server.md.

One module on purpose (~400 lines): the plugin's definition, its AOT compile and the ONNX
rewrite that places it must agree on one signature, so they stay side by side.
"""

import os
import re
from functools import lru_cache
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import triton
import triton.language as tl

from .conv2d import ACTIVATIONS, FLAT_K_MAX_CHANNELS, conv2d_nhwc_kernel
from .shapes import Tile  # the launch parameters every plan speaks; a tactic is one Tile

PLUGIN_NAMESPACE = "glcic"
PLUGIN_NAME = "conv2d_nhwc"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
PLUGIN_VERSION = "1"
ONNX_DOMAIN = "glcic"
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
TRITON_POINTER_TYPES = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}
# Triton launches need dynamic shared memory above 48 KiB opted in per kernel; TensorRT's AOT
# launcher is not documented to do that, so by default only tiles that fit are offered.
DEFAULT_MAX_SHARED_BYTES = 48 * 1024
# Override the target GPU of the AOT compile ("cuda:90"); default: the GPU of this machine.
TARGET_ENV = "GLCIC_TRT_PLUGIN_TARGET"
# PTX ISA version of the PTX handed to TensorRT, which the *driver* JIT-compiles when the engine
# loads: Triton would otherwise use its bundled ptxas's newest ISA (9.x with Triton 3.9, which
# needs a CUDA 13 driver). 8.4 = CUDA 12.4 drivers; sm_90a needs at least 8.0.
DEFAULT_PTX_VERSION = 84
PTX_VERSION_ENV = "GLCIC_TRT_PLUGIN_PTX_VERSION"


# Tactic i + 1 is PLUGIN_TILES[i] (TensorRT reserves tactic 0 for "default": the first tile).
PLUGIN_TILES: Tuple[Tile, ...] = (
    Tile(128, 128, 32, 8, 3),
    Tile(128, 64, 32, 4, 3),
    Tile(64, 128, 32, 4, 3),
    Tile(64, 64, 32, 4, 2),
)


def _raw_kernel(fn: Any) -> Any:
    """The ``@triton.jit`` function under ``@triton.autotune`` / ``@triton.heuristics``."""
    from triton.runtime.autotuner import Autotuner, Heuristics

    while isinstance(fn, (Autotuner, Heuristics)):
        fn = fn.fn
    return fn


_conv2d_core = _raw_kernel(conv2d_nhwc_kernel)
# Globals read inside @triton.jit code must be constexpr.
_FLAT_K_MAX_CHANNELS = tl.constexpr(FLAT_K_MAX_CHANNELS)


@triton.jit
def conv2d_nhwc_plugin_kernel(
    x_ptr, w_ptr, bias_ptr, BATCH, H, W, out_ptr,
    CIN: tl.constexpr, COUT: tl.constexpr, KSIZE: tl.constexpr, DILATION: tl.constexpr,
    ACTIVATION: tl.constexpr, COMPUTE_FP32: tl.constexpr, FP32_IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """Stride-1 "same" conv + bias + activation on contiguous NHWC tensors.

    Argument order = TensorRT's AOT plugin launch order: inputs, scalar extras, outputs.
    Grid: 1-D, cdiv(BATCH*H*W, BLOCK_M) * cdiv(COUT, BLOCK_N) programs; w is ``pack_weight``'s
    (KSIZE*KSIZE*CIN, COUT) layout.
    """
    # No post-affine (scale/shift pointers unused) and no split-K: one program per output tile,
    # so the workspace and counter pointers are never read either.
    _conv2d_core(
        x_ptr, w_ptr, bias_ptr, bias_ptr, bias_ptr, out_ptr, out_ptr, out_ptr,
        BATCH, H, W, CIN, H, W, COUT,
        H * W * CIN, W * CIN, CIN, 1,
        H * W * COUT, W * COUT, COUT, 1,
        KSIZE, KSIZE, 1, DILATION, DILATION * (KSIZE - 1) // 2,
        ACTIVATION, False, CIN < _FLAT_K_MAX_CHANNELS, COMPUTE_FP32, FP32_IEEE,
        BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, 1, False, CIN % BLOCK_K == 0,
    )


def plugin_grid(batch: int, height: int, width: int, out_channels: int, tile: Tile) -> int:
    """Number of programs (1-D grid) for one launch."""
    return triton.cdiv(batch * height * width, tile.block_m) * triton.cdiv(out_channels, tile.block_n)


def plugin_constexprs(dtype: str, in_channels: int, out_channels: int, kernel_size: int, dilation: int,
                      activation: int, tile: Tile) -> Dict[str, Any]:
    return {
        "CIN": in_channels, "COUT": out_channels, "KSIZE": kernel_size, "DILATION": dilation,
        "ACTIVATION": activation, "COMPUTE_FP32": dtype == "fp32", "FP32_IEEE": True,
        "BLOCK_M": tile.block_m, "BLOCK_N": tile.block_n, "BLOCK_K": tile.block_k, "GROUP_M": tile.group_m,
    }


class CompiledPluginKernel(NamedTuple):
    name: str  # PTX entry name
    ptx: str  # scratch parameters removed: exactly the 7 arguments TensorRT passes
    cubin: bytes  # as Triton built it (9 parameters: + global/profile scratch, pass NULL)
    shared: int  # dynamic shared memory per block, bytes
    num_warps: int
    arch: int  # e.g. 90


def parse_target(text: str) -> Tuple[str, int]:
    """``"cuda:90"`` / ``"90"`` / ``"sm_90"`` -> ("cuda", 90)."""
    value = text.strip().lower().replace("sm_", "").replace("cuda:", "")
    try:
        return "cuda", int(value.split(":")[0])
    except ValueError:
        raise ValueError(f"{TARGET_ENV}: expected e.g. cuda:90, got {text!r}") from None


def current_target() -> Tuple[str, int]:
    """The GPU architecture to compile for: ``GLCIC_TRT_PLUGIN_TARGET`` or this machine's GPU."""
    if os.environ.get(TARGET_ENV):
        return parse_target(os.environ[TARGET_ENV])
    target = triton.runtime.driver.active.get_current_target()
    return target.backend, int(target.arch)


@lru_cache(maxsize=None)
def compile_plugin_kernel(
    dtype: str, in_channels: int, out_channels: int, kernel_size: int, dilation: int, activation: int,
    tile: Tile, target: Tuple[str, int],
) -> CompiledPluginKernel:
    """Compile ``conv2d_nhwc_plugin_kernel`` for one layer shape and tile (no GPU needed)."""
    from triton.backends.compiler import GPUTarget

    if dtype not in TRITON_POINTER_TYPES:
        raise ValueError(f"dtype must be one of {sorted(TRITON_POINTER_TYPES)}, got {dtype!r}")
    ptr = TRITON_POINTER_TYPES[dtype]
    signature = {"x_ptr": ptr, "w_ptr": ptr, "bias_ptr": ptr, "BATCH": "i32", "H": "i32", "W": "i32", "out_ptr": ptr}
    constexprs = plugin_constexprs(dtype, in_channels, out_channels, kernel_size, dilation, activation, tile)
    signature.update({name: "constexpr" for name in constexprs})
    # TensorRT allocates tensors 256-byte aligned: let Triton vectorise the pointer accesses.
    attrs = {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 6)}
    source = triton.compiler.ASTSource(fn=conv2d_nhwc_plugin_kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    backend, arch = target
    options = {"num_warps": tile.num_warps, "num_stages": tile.num_stages,
               "ptx_version": int(os.environ.get(PTX_VERSION_ENV, DEFAULT_PTX_VERSION))}
    compiled = triton.compile(source, target=GPUTarget(backend, arch, 32), options=options)
    meta = compiled.metadata
    if getattr(meta, "global_scratch_size", 0) or getattr(meta, "profile_scratch_size", 0):
        raise RuntimeError("the plugin kernel needs Triton scratch memory, which TensorRT's AOT launcher cannot provide")
    ptx = strip_scratch_params(compiled.asm["ptx"], meta.name, keep=7)
    return CompiledPluginKernel(meta.name, ptx, bytes(compiled.asm["cubin"]), int(meta.shared), int(meta.num_warps), arch)


def strip_scratch_params(ptx: str, entry: str, keep: int) -> str:
    """Remove the parameters after the first ``keep`` from PTX entry ``entry``.

    Triton appends global- and profile-scratch pointers to every kernel; TensorRT passes only
    the plugin's inputs, extras and outputs. The removed parameters must be unreferenced in
    the body (true when the scratch sizes are 0), else ``ValueError``.
    """
    match = re.search(r"\.entry\s+" + re.escape(entry) + r"\s*\((.*?)\)", ptx, flags=re.S)
    if match is None:
        raise ValueError(f"PTX has no entry {entry!r}")
    params = [p.strip() for p in match.group(1).split(",") if p.strip()]
    if len(params) < keep:
        raise ValueError(f"PTX entry {entry!r} has {len(params)} parameters, fewer than {keep}")
    body = ptx[match.end():]
    for extra in params[keep:]:
        name = extra.split()[-1]
        if re.search(r"\b" + re.escape(name) + r"\b", body):
            raise ValueError(f"PTX entry {entry!r} uses parameter {name}; it cannot be removed")
    new_list = "(\n\t" + ",\n\t".join(params[:keep]) + "\n)"
    return ptx[: match.start(1) - 1] + new_list + ptx[match.end():]


def usable_tiles(dtype: str, max_shared: Optional[int] = None) -> List[int]:
    """Tactic numbers (1-based indices into ``PLUGIN_TILES``) whose pipeline fits shared memory."""
    limit = max_shared if max_shared is not None else int(os.environ.get("GLCIC_TRT_PLUGIN_MAX_SHARED", DEFAULT_MAX_SHARED_BYTES))
    tactics = [i + 1 for i, t in enumerate(PLUGIN_TILES) if t.shared_bytes(ELEMENT_BYTES[dtype]) <= limit]
    return tactics or [len(PLUGIN_TILES)]


# ---------------------------------------------------------------------------------- ONNX side


def plugin_layer_numbers(layers: Sequence[Any], which: str = "dilated") -> List[int]:
    """1-based numbers of the folded layers to run as plugins.

    "dilated": 3x3 stride-1 layers with dilation > 1 (GLCIC's 7-10). "h4": every 3x3
    stride-1 layer with 256 input and output channels (5-12). Only conv (not transposed)
    layers with ReLU qualify.
    """
    if which not in ("dilated", "h4"):
        raise ValueError(f"plugin layer selection must be 'dilated' or 'h4', got {which!r}")
    chosen = []
    for i, layer in enumerate(layers):
        if layer.transposed or layer.stride != 1 or layer.kernel != 3 or layer.activation != "relu":
            continue
        if which == "dilated" and layer.dilation > 1:
            chosen.append(i + 1)
        elif which == "h4" and layer.in_channels == 256 and layer.out_channels == 256:
            chosen.append(i + 1)
    return chosen


_STORAGE = {1: "float32", 10: "float16", 16: "uint16"}  # ONNX FLOAT, FLOAT16, BFLOAT16 (raw bits)


def _tensor_array(tensor: Any):
    import numpy as np
    from onnx import numpy_helper

    if tensor.data_type not in _STORAGE:
        raise ValueError(f"initializer {tensor.name}: unsupported data type {tensor.data_type}")
    if tensor.raw_data:
        return np.frombuffer(tensor.raw_data, dtype=_STORAGE[tensor.data_type]).reshape(tuple(tensor.dims))
    if tensor.data_type == 16:
        raise ValueError(f"initializer {tensor.name}: bfloat16 weights must be stored as raw data")
    return numpy_helper.to_array(tensor)


def pack_weight_array(weight: Any) -> Any:
    """(COUT, CIN, k, k) -> (k*k*CIN, COUT), row (kh*k + kw)*CIN + ci: ``conv2d.pack_weight`` in numpy."""
    import numpy as np

    cout, cin, kh, kw = weight.shape
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout))


def replace_convs_with_plugins(model: Any, layer_numbers: Sequence[int]) -> Any:
    """A copy of ``model`` (from ``onnx_graph.build_onnx_model``) with layers ``layer_numbers``
    (Conv ``conv{n}`` + Relu ``relu{n}``) replaced by ``glcic::conv2d_nhwc`` plugin nodes."""
    import onnx
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = list(graph.node)
    for n in layer_numbers:
        conv_i = next((i for i, node in enumerate(nodes) if node.name == f"conv{n}" and node.op_type == "Conv"), None)
        if conv_i is None:
            raise ValueError(f"the ONNX graph has no Conv node conv{n}")
        conv = nodes[conv_i]
        consumers = [node for node in nodes if conv.output[0] in node.input]
        if len(consumers) != 1 or consumers[0].op_type != "Relu":
            raise ValueError(f"conv{n} is not followed by a single Relu; only conv + ReLU layers can become plugins")
        relu = consumers[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        kernel = list(attrs.get("kernel_shape", []))
        dilation = list(attrs.get("dilations", [1, 1]))
        if kernel != [3, 3] or list(attrs.get("strides", [1, 1])) != [1, 1] or dilation[0] != dilation[1] \
                or list(attrs.get("pads", [])) != [dilation[0]] * 4 or attrs.get("group", 1) != 1:
            raise ValueError(f"conv{n} is not a 3x3 stride-1 'same' convolution: {attrs}")
        x, w_name, b_name = conv.input
        weight = inits[w_name]
        cout, cin = int(weight.dims[0]), int(weight.dims[1])
        packed = pack_weight_array(_tensor_array(weight))
        packed_name = f"{w_name}_packed"
        graph.initializer.append(helper.make_tensor(packed_name, weight.data_type, packed.shape, packed.tobytes(), raw=True))
        plugin = helper.make_node(
            PLUGIN_NAME, [x, packed_name, b_name], [relu.output[0]], name=f"conv{n}_triton", domain=ONNX_DOMAIN,
            plugin_namespace=PLUGIN_NAMESPACE, kernel_size=3, dilation=int(dilation[0]),
            activation=ACTIVATIONS["relu"], in_channels=cin, out_channels=cout,
        )
        nodes[conv_i] = plugin
        nodes.remove(relu)
        if not any(w_name in node.input for node in nodes):
            graph.initializer.remove(weight)
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(op.domain == ONNX_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(ONNX_DOMAIN, 1))
    return model


# ----------------------------------------------------------------------------- TensorRT side

_REGISTERED = False


def register() -> None:
    """Register ``glcic::conv2d_nhwc`` with TensorRT (idempotent).

    Raises ``ImportError`` with the reason when TensorRT's ``tensorrt.plugin`` AOT API is
    missing (an older TensorRT, or none installed).
    """
    global _REGISTERED
    if _REGISTERED:
        return
    try:
        import tensorrt as trt
        import tensorrt.plugin as trtp
    except ImportError as e:
        raise ImportError(f"Triton plugins need TensorRT's Python plugin API (pip install tensorrt): {e}") from None
    if not hasattr(trtp, "aot_impl"):
        raise ImportError(
            f"TensorRT {trt.__version__} has no tensorrt.plugin.aot_impl (ahead-of-time plugins); upgrade TensorRT "
            "(pip install -U tensorrt) to build with --plugins triton"
        )
    registry = trt.get_plugin_registry()
    if registry.get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None:
        _REGISTERED = True  # e.g. the C++ plugin library is loaded: same op, same semantics
        return
    dtype_names = {trt.DataType.FLOAT: "fp32", trt.DataType.HALF: "fp16", trt.DataType.BF16: "bf16"}
    trt_type_names = {"fp32": "FP32", "fp16": "FP16", "bf16": "BF16"}

    def dtype_of(desc: trtp.TensorDesc) -> str:
        if desc.dtype not in dtype_names:
            raise ValueError(f"{PLUGIN_ID} supports fp32/fp16/bf16 tensors, got {desc.dtype}")
        return dtype_names[desc.dtype]

    # Type hints here are evaluated at definition (no postponed annotations in this module):
    # tensorrt.plugin checks them against the registered signature.
    @trtp.register(PLUGIN_ID)
    def conv2d_nhwc_desc(
        x: trtp.TensorDesc, w: trtp.TensorDesc, b: trtp.TensorDesc, kernel_size: int, dilation: int,
        activation: int, in_channels: int, out_channels: int,
    ) -> trtp.TensorDesc:
        # (N, CIN, H, W) -> (N, COUT, H, W): stride 1, "same" padding.
        shape = trtp.ShapeExprs(4)
        shape[0] = x.shape_expr[0]
        shape[1] = w.shape_expr[1]
        shape[2] = x.shape_expr[2]
        shape[3] = x.shape_expr[3]
        return trtp.from_shape_expr(shape, dtype=x.dtype)

    @trtp.autotune(PLUGIN_ID)
    def conv2d_nhwc_autotune(
        x: trtp.TensorDesc, w: trtp.TensorDesc, b: trtp.TensorDesc, outputs: Tuple[trtp.TensorDesc],
    ) -> List[trtp.AutoTuneCombination]:
        dtype = dtype_of(x)
        t, wt, bt = trt_type_names[dtype], trt_type_names[dtype_of(w)], trt_type_names[dtype_of(b)]
        return [trtp.AutoTuneCombination(f"{t}, {wt}, {bt}, {t}", "HWC, LINEAR, LINEAR, HWC", usable_tiles(dtype))]

    @trtp.aot_impl(PLUGIN_ID)
    def conv2d_nhwc_aot(
        x: trtp.TensorDesc, w: trtp.TensorDesc, b: trtp.TensorDesc, kernel_size: int, dilation: int,
        activation: int, in_channels: int, out_channels: int, outputs: Tuple[trtp.TensorDesc], tactic: int,
    ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
        tile = PLUGIN_TILES[max(tactic, 1) - 1]
        kernel = compile_plugin_kernel(
            dtype_of(x), in_channels, out_channels, kernel_size, dilation, activation, tile, current_target()
        )
        batch, height, width = x.shape_expr[0], x.shape_expr[2], x.shape_expr[3]
        launch = trtp.KernelLaunchParams()
        launch.grid_x = trtp.cdiv(batch * height * width, tile.block_m) * triton.cdiv(out_channels, tile.block_n)
        launch.block_x = kernel.num_warps * 32
        launch.shared_mem = kernel.shared
        extra = trtp.SymIntExprs(3)
        extra[0] = trtp.SymInt32(batch)
        extra[1] = trtp.SymInt32(height)
        extra[2] = trtp.SymInt32(width)
        return kernel.name, kernel.ptx, launch, extra

    _REGISTERED = True
