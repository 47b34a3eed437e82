/*
 * libglcic_kernels: GLCIC's Triton convolution, compiled ahead of time, callable from C.
 *
 * One entry point runs a stride-1 "same" KxK convolution + bias + ReLU on contiguous NHWC
 * tensors (the layers the TensorRT plugin replaces), on the caller's CUDA stream. The kernels
 * are cubins for the architectures the library was built for (CMake option GLCIC_CUDA_ARCHS);
 * the right one is picked for the current context's GPU and loaded on first use.
 *
 * Tensors (device pointers): x (N, H, W, Cin); weight (K*K*Cin, Cout), row (kh*K + kw)*Cin + ci
 * (glcic_fast.kernels.pack_weight's layout); bias (Cout); out (N, H, W, Cout); all of `dtype`.
 * Needs a current CUDA context (cuCtxSetCurrent / the runtime API's primary context).
 */
#ifndef GLCIC_KERNELS_H
#define GLCIC_KERNELS_H

#include <cuda.h>

#if defined(__GNUC__)
#define GLCIC_API __attribute__((visibility("default")))
#else
#define GLCIC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GLCIC_FP32 = 0, GLCIC_FP16 = 1, GLCIC_BF16 = 2 } glcic_dtype;

/* Returned when no compiled variant matches the arguments and this GPU. */
#define GLCIC_ERROR_NO_VARIANT ((CUresult)0x6c636700)

/* Launch on `stream`. tactic: 1-based tile index (as in trt_plugins.PLUGIN_TILES), 0 = the
 * first compiled one. activation: 1 = ReLU (the only one compiled). Returns CUDA_SUCCESS, a
 * CUDA error, or GLCIC_ERROR_NO_VARIANT. */
GLCIC_API CUresult glcic_conv2d_nhwc(CUstream stream, glcic_dtype dtype, int in_channels, int out_channels,
                           int kernel_size, int dilation, int activation, int tactic,
                           int batch, int height, int width,
                           CUdeviceptr x, CUdeviceptr weight, CUdeviceptr bias, CUdeviceptr out);

/* Tactics compiled for these arguments on a GPU of compute capability `arch` (major*10 + minor):
 * writes up to `capacity` of them to `tactics` and returns how many exist. */
GLCIC_API int glcic_conv2d_nhwc_tactics(glcic_dtype dtype, int in_channels, int out_channels, int kernel_size,
                              int dilation, int activation, int arch, int* tactics, int capacity);

/* Compute capability (major*10 + minor) of the current context's device, or -1. */
GLCIC_API int glcic_current_arch(void);

/* Number of compiled variants, and a description of variant i ("fp16 256->256 k3 d2 sm_90 tile 1"). */
GLCIC_API int glcic_num_variants(void);
GLCIC_API int glcic_describe_variant(int i, char* buffer, int size);

/* Unload every loaded module (call before destroying the contexts they were loaded in). */
GLCIC_API void glcic_unload(void);

#ifdef __cplusplus
}
#endif

#endif /* GLCIC_KERNELS_H */
