"""What the CPU can do fast: the instruction-set extensions that decide bf16 and int8 speed.

The CPU backends' automatic precision choice (``backends.cpu_auto``) and the benchmark header
read this. What matters:

* AMX (``amx_bf16`` / ``amx_int8``): tile matrix units, Intel Sapphire Rapids and later;
* AVX-512 BF16 (``avx512_bf16``): bf16 dot products at twice the fp32 rate;
* VNNI (``avx512_vnni`` or ``avx_vnni``): int8 dot products in one instruction, without the
  16-bit overflow of the AVX2 ``vpmaddubsw`` path (which is why int8 on an AVX2-only CPU
  keeps 7-bit weights: NNCF's "overflow fix");
* AVX2 / AVX-512F: the fp32 baseline.

Linux exposes the flags in /proc/cpuinfo. Elsewhere we fall back to OpenVINO's own
``OPTIMIZATION_CAPABILITIES`` (which reports BF16 / INT8 support) when it is installed.
``GLCIC_FAST_CPU_FLAGS`` (a space-separated flag list) overrides detection, so the choice can
be tested for other CPUs on any machine.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Iterable, Optional

FLAGS_ENV = "GLCIC_FAST_CPU_FLAGS"


@dataclass(frozen=True)
class CpuIsa:
    amx: bool
    avx512_bf16: bool
    vnni: bool
    avx512: bool
    avx2: bool
    model: str = ""

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware (AVX-512 BF16 or AMX), not emulated in fp32."""
        return self.amx or self.avx512_bf16

    @property
    def native_int8(self) -> bool:
        """int8 dot products without the AVX2 16-bit overflow (VNNI or AMX)."""
        return self.amx or self.vnni

    @property
    def tier(self) -> str:
        """One word for the CPU class: the key of the auto-choice order."""
        if self.amx:
            return "amx"
        if self.avx512_bf16:
            return "avx512-bf16"
        if self.vnni:
            return "vnni"
        if self.avx2 or self.avx512:
            return "avx2"
        return "baseline"

    def summary(self) -> str:
        """e.g. 'AVX-512 (BF16, VNNI), no AMX'."""
        if not (self.avx512 or self.avx2):
            return "no AVX2"
        base = "AVX-512" if self.avx512 else "AVX2"
        extras = [name for name, on in (("BF16", self.avx512_bf16), ("VNNI", self.vnni)) if on]
        text = f"{base} ({', '.join(extras)})" if extras else f"{base} only"
        return text + (", AMX" if self.amx else ", no AMX")


def isa_from_flags(flags: Iterable[str], model: str = "") -> CpuIsa:
    f = {x.strip().lower() for x in flags if x.strip()}
    return CpuIsa(
        amx=bool({"amx_bf16", "amx_int8", "amx_tile"} & f),
        avx512_bf16="avx512_bf16" in f,
        vnni=bool({"avx512_vnni", "avx_vnni"} & f),
        avx512="avx512f" in f,
        avx2="avx2" in f,
        model=model,
    )


def _proc_cpuinfo() -> tuple[Optional[list[str]], str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None, ""
    flags: Optional[list[str]] = None
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and flags is None:
            flags = value.split()
        elif key == "model name" and not model:
            model = value.strip()
    return flags, model


def cpu_model() -> str:
    """The CPU's name (``model name`` in /proc/cpuinfo, else what the platform says); the real
    CPU's even when ``GLCIC_FAST_CPU_FLAGS`` overrides its flags."""
    return _proc_cpuinfo()[1] or platform.processor() or platform.machine() or "unknown CPU"


def _openvino_flags() -> Optional[list[str]]:
    try:
        import openvino as ov

        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # not installed, or no CPU plugin: nothing to learn here
        return None
    # OpenVINO reports native bf16; its "INT8" is there on AVX2 too, so it says nothing of VNNI.
    return ["avx2"] + (["avx512_bf16"] if "BF16" in caps else [])


def detect() -> CpuIsa:
    """The CPU at hand (``GLCIC_FAST_CPU_FLAGS`` overrides, for tests and what-ifs)."""
    override = os.environ.get(FLAGS_ENV)
    if override is not None:
        return isa_from_flags(override.split(), model="(flags from " + FLAGS_ENV + ")")
    flags, model = _proc_cpuinfo()
    if flags is None:
        flags = _openvino_flags() or []
        model = model or platform.processor()
    return isa_from_flags(flags, model)


__all__ = ["CpuIsa", "FLAGS_ENV", "cpu_model", "detect", "isa_from_flags"]
