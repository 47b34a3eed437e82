"""The vocabulary of launch plans: one layer's launch problem (``LayerShape``) and one kernel
variant's launch parameters (``Tile``), with the paper's network as a list of shapes.

Plain data, so the plans (``plan``), the latency model (``latency_model``) and the AOT proof
all speak it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import triton

from .conv2d import FLAT_K_MAX_CHANNELS

H200_SMS = 132  # what the AOT proof and the committed model tables assume


@dataclass(frozen=True)
class Tile:
    """One kernel variant's launch parameters (the constexprs that shape the compiled code)."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int
    group_m: int = 8
    split_k: int = 1
    w_tma: bool = False

    def config(self) -> dict:
        """The ``config=`` dict the launchers (``conv2d_nhwc`` / ``conv_transpose2d_nhwc``) take."""
        return {"BLOCK_M": self.block_m, "BLOCK_N": self.block_n, "BLOCK_K": self.block_k, "GROUP_M": self.group_m,
                "num_warps": self.num_warps, "num_stages": self.num_stages, "SPLIT_K": self.split_k,
                "W_TMA": self.w_tma}

    @property
    def label(self) -> str:
        extra = (f" split{self.split_k}" if self.split_k > 1 else "") + (" tma" if self.w_tma else "")
        return f"{self.block_m}x{self.block_n}x{self.block_k} w{self.num_warps} s{self.num_stages}{extra}"

    def shared_bytes(self, element_bytes: int) -> int:
        """Operand pipeline in shared memory (A and B tiles per stage), an estimate."""
        return (self.block_m * self.block_k + self.block_k * self.block_n) * element_bytes * max(1, self.num_stages)

    @classmethod
    def from_config(cls, config: dict) -> "Tile":
        return cls(config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"], config.get("num_warps", 4),
                   config.get("num_stages", 2), config.get("GROUP_M", 8), config.get("SPLIT_K", 1),
                   bool(config.get("W_TMA", False)))


@dataclass(frozen=True)
class LayerShape:
    """One layer's launch problem: sizes as the kernel sees them (NHWC, per image batch)."""

    index: int  # 1-based layer number
    transposed: bool
    batch: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int
    cin: int
    cout: int
    kernel: int
    stride: int
    dilation: int
    padding: int
    activation: str
    in_bytes: int = 2  # bytes per input element as read (the backend's first layer reads fp32)
    out_bytes: int = 2  # bytes per output element as written (its last layer writes fp32)

    @property
    def flat_k(self) -> bool:
        return not self.transposed and self.cin < FLAT_K_MAX_CHANNELS

    @property
    def parities(self) -> int:
        return 4 if self.transposed else 1

    @property
    def m_total(self) -> int:
        """GEMM rows of one launch sub-grid: output pixels (per parity for the transposed conv)."""
        return self.batch * (self.h_in * self.w_in if self.transposed else self.h_out * self.w_out)

    @property
    def taps(self) -> int:
        return 4 if self.transposed else self.kernel * self.kernel

    @property
    def k_total(self) -> int:
        return self.taps * self.cin

    @property
    def macs(self) -> int:
        """Useful multiply-adds (a transposed conv counted as its sub-pixel 2x2 work)."""
        return self.m_total * self.parities * self.k_total * self.cout

    @property
    def kind(self) -> str:
        if self.transposed:
            return "transposed 4x4/2"
        return (f"{self.kernel}x{self.kernel}" + (f"/{self.stride}" if self.stride > 1 else "")
                + (f" d{self.dilation}" if self.dilation > 1 else ""))

    def k_steps(self, tile: Tile) -> int:
        """Reduction steps of the whole tile (all splits together)."""
        if self.flat_k:
            return triton.cdiv(self.k_total, tile.block_k)
        return self.taps * triton.cdiv(self.cin, tile.block_k)

    def output_tiles(self, tile: Tile) -> int:
        return triton.cdiv(self.m_total, tile.block_m) * triton.cdiv(self.cout, tile.block_n) * self.parities

    def ctas(self, tile: Tile) -> int:
        return self.output_tiles(tile) * tile.split_k


def layer_shapes(layers: Sequence, batch: int, height: int, width: int, element_bytes: int = 2) -> list[LayerShape]:
    """LayerShapes of a layer list (``FoldedLayer``s, or anything with in_channels,
    out_channels, kernel, stride, dilation, padding, transposed, activation) at one input size,
    as the triton backend runs it: fp32 NCHW in and out, ``element_bytes`` in between."""
    shapes, h, w = [], height, width
    for i, layer in enumerate(layers):
        if layer.transposed:
            h_out, w_out = 2 * h, 2 * w
        else:
            span = layer.dilation * (layer.kernel - 1)
            h_out = (h + 2 * layer.padding - span - 1) // layer.stride + 1
            w_out = (w + 2 * layer.padding - span - 1) // layer.stride + 1
        shapes.append(LayerShape(
            index=i + 1, transposed=layer.transposed, batch=batch, h_in=h, w_in=w, h_out=h_out, w_out=w_out,
            cin=layer.in_channels, cout=layer.out_channels, kernel=layer.kernel, stride=layer.stride,
            dilation=layer.dilation, padding=layer.padding, activation=layer.activation,
            in_bytes=4 if i == 0 else element_bytes, out_bytes=4 if i == len(layers) - 1 else element_bytes,
        ))
        h, w = h_out, w_out
    return shapes


def paper_layer_shapes(batch: int, size: int, element_bytes: int = 2) -> list[LayerShape]:
    """The paper's completion network (``layers.COMPLETION_LAYERS``) at size x size."""
    from ..layers import COMPLETION_LAYERS, layer_in_channels

    @dataclass(frozen=True)
    class _Spec:
        in_channels: int
        out_channels: int
        kernel: int
        stride: int
        dilation: int
        padding: int
        transposed: bool
        activation: str

    specs = [_Spec(cin, s.out_channels, s.kernel, s.stride, s.dilation, s.padding, s.transposed, s.activation)
             for cin, s in zip(layer_in_channels(), COMPLETION_LAYERS)]
    return layer_shapes(specs, batch, size, size, element_bytes)
