"""Custom Triton kernels for the GLCIC completion network (installed as ``glcic_fast.kernels``).

- ``conv2d``: implicit-GEMM NHWC convolution (kernel 3 / 5 / any odd size, stride, dilation,
  "same" padding) with a fused bias + ReLU/sigmoid + affine + cast epilogue.
- ``conv_transpose2d``: the 4x4 stride-2 transposed conv as four 2x2 sub-pixel convolutions
  written straight into the interleaved output.
- ``configs``: autotune candidates, the default tile rule, and the interpreter switch.
- ``plan``: the launch plans ("default", "small-batch"): the tile every layer runs with.
- ``latency_model``: modelled per-layer time on an H200, printed beside measured times
  (``latency_table``: its per-plan tables; ``shapes``: the launch problems and tiles both speak).
- ``parity``: pass/fail criteria against a float32 reference that scale with the signal.
- ``aot_proof``: compile every variant the backend launches for sm_90 / sm_80 without a GPU.

Importing this package imports Triton, and Triton decides *at that moment* whether the kernels
are compiled for a GPU or interpreted on the CPU (``TRITON_INTERPRET=1``): set the variable
before the first import.
"""

from .configs import INTERPRETER_MODE
from .conv2d import (
    ACTIVATIONS,
    conv2d_grid,
    conv2d_nhwc,
    conv2d_nhwc_kernel,
    conv_output_size,
    pack_weight,
    reference_conv2d_nhwc,
    split_k_buffers,
)
from .conv_transpose2d import (
    conv_transpose2d_grid,
    conv_transpose2d_nhwc,
    conv_transpose2d_nhwc_kernel,
    pack_transposed_weight,
    reference_conv_transpose2d_nhwc,
)

__all__ = [
    "ACTIVATIONS",
    "INTERPRETER_MODE",
    "conv2d_grid",
    "conv2d_nhwc",
    "conv2d_nhwc_kernel",
    "conv_output_size",
    "conv_transpose2d_grid",
    "conv_transpose2d_nhwc",
    "conv_transpose2d_nhwc_kernel",
    "pack_transposed_weight",
    "pack_weight",
    "reference_conv2d_nhwc",
    "reference_conv_transpose2d_nhwc",
    "split_k_buffers",
]
