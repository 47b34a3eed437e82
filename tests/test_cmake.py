"""The native build: CMake configures, AOT-compiles one Triton kernel variant and builds
libglcic_kernels in a temporary folder; the library exports its C API and describes the
variant it holds. On a CUDA machine the library's kernel also runs and is checked against
torch. The TensorRT plugin target is skipped (with a message) where NvInfer.h is absent."""

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HAS_CUDA

REPO = Path(__file__).resolve().parents[1]
API = ["glcic_conv2d_nhwc", "glcic_conv2d_nhwc_tactics", "glcic_current_arch", "glcic_num_variants",
       "glcic_describe_variant", "glcic_unload"]


def _cuda_header() -> bool:
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(str(Path(os.path.realpath(nvcc)).parents[1]))
    return any(r and (Path(r) / "include" / "cuda.h").is_file() for r in roots)


pytestmark = [
    pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed"),
    pytest.mark.skipif(not _cuda_header(), reason="CUDA toolkit headers (cuda.h; nvcc) not found"),
]


def _arch() -> int:
    if HAS_CUDA:
        import torch

        major, minor = torch.cuda.get_device_capability()
        return major * 10 + minor
    return 80


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    build_dir = tmp_path_factory.mktemp("cmake-build")
    env = dict(os.environ, TRITON_INTERPRET="0")
    configure = subprocess.run(
        ["cmake", "-S", str(REPO), "-B", str(build_dir), f"-DPython3_EXECUTABLE={sys.executable}",
         f"-DGLCIC_CUDA_ARCHS={_arch()}", "-DGLCIC_AOT_DTYPES=fp16", "-DGLCIC_AOT_DILATIONS=2", "-DGLCIC_AOT_JOBS=1"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert configure.returncode == 0, configure.stdout[-3000:] + configure.stderr[-3000:]
    compiled = subprocess.run(["cmake", "--build", str(build_dir), "-j", "2"], capture_output=True, text=True,
                              timeout=600, env=env)
    assert compiled.returncode == 0, compiled.stdout[-4000:] + compiled.stderr[-4000:]
    return build_dir, configure.stdout


def test_configure_reports_plugin_target(build):
    _, log = build
    assert ("skipping the glcic_trt_plugin target" in log) or ("building glcic_trt_plugin" in log)


def test_kernel_library_exports_api_and_variant(build):
    build_dir, _ = build
    lib_path = build_dir / "libglcic_kernels.so"
    assert lib_path.exists()
    table = (build_dir / "glcic_kernels_table.c").read_text()
    assert "static const unsigned char glcic_cubin_0[]" in table and "0x7f, 0x45, 0x4c, 0x46" in table  # an ELF cubin
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib_path)], capture_output=True, text=True).stdout
    exported = {line.split()[-1] for line in symbols.splitlines() if line.strip()}
    assert set(API) <= exported
    assert "glcic_variants" not in exported  # internal table stays hidden
    # Lazy binding: the CUDA driver symbols are only needed once a kernel launches.
    lib = ctypes.CDLL(str(lib_path), mode=os.RTLD_LAZY)
    assert lib.glcic_num_variants() == 1
    buf = ctypes.create_string_buffer(256)
    assert lib.glcic_describe_variant(0, buf, 256) > 0
    assert buf.value.decode().startswith(f"fp16 256->256 k3 d2 sm_{_arch()} tile 1")
    tactics = (ctypes.c_int * 4)()
    assert lib.glcic_conv2d_nhwc_tactics(1, 256, 256, 3, 2, 1, _arch(), tactics, 4) == 1 and tactics[0] == 1
    assert lib.glcic_conv2d_nhwc_tactics(1, 256, 256, 3, 4, 1, _arch(), tactics, 4) == 0  # dilation 4 not built
    assert lib.glcic_conv2d_nhwc_tactics(0, 256, 256, 3, 2, 1, _arch(), tactics, 4) == 0  # fp32 not built


@pytest.mark.skipif(not HAS_CUDA, reason="running the AOT kernel needs a CUDA GPU")
def test_kernel_library_runs_on_gpu(build):
    import torch

    build_dir, _ = build
    ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)  # in case the build found no libcuda to link
    lib = ctypes.CDLL(str(build_dir / "libglcic_kernels.so"))
    torch.cuda.init()
    torch.zeros(1, device="cuda")  # make the primary context current on this thread
    gen = torch.Generator().manual_seed(0)
    n, h, w = 2, 19, 23
    x = torch.randn(n, h, w, 256, generator=gen).half().cuda()
    weight = (torch.randn(256, 256, 3, 3, generator=gen) * 0.02).half().cuda()
    bias = torch.randn(256, generator=gen).half().cuda()
    packed = weight.permute(2, 3, 1, 0).reshape(9 * 256, 256).contiguous()
    out = torch.empty(n, h, w, 256, dtype=torch.half, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    args = [ctypes.c_void_p(stream), 1, 256, 256, 3, 2, 1, 0, n, h, w] + \
        [ctypes.c_uint64(t.data_ptr()) for t in (x, packed, bias, out)]
    assert lib.glcic_conv2d_nhwc(*args) == 0
    torch.cuda.synchronize()
    ref = torch.relu(torch.nn.functional.conv2d(x.permute(0, 3, 1, 2).float(), weight.float(), bias.float(),
                                                padding=2, dilation=2)).permute(0, 2, 3, 1)
    assert torch.allclose(out.float(), ref, atol=2e-2, rtol=1e-2)
