/*
 * libglcic_kernels runtime: pick the compiled variant for the current GPU, load its cubin once,
 * launch it. The variants themselves (cubins + table) come from generate.py.
 *
 * Triton kernels take two hidden trailing pointer parameters (global and profile scratch);
 * ours need no scratch memory (generate.py checks), so they are passed as NULL.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "glcic_kernels_internal.h"

#define GLCIC_MAX_VARIANTS 4096
#define DEFAULT_SHARED_LIMIT (48 * 1024)

typedef struct {
    CUcontext context; /* the context the module below was loaded in (NULL: not loaded) */
    CUmodule module;
    CUfunction function;
} loaded_kernel;

static loaded_kernel g_loaded[GLCIC_MAX_VARIANTS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char* dtype_name(int dtype) {
    switch (dtype) {
        case GLCIC_FP32: return "fp32";
        case GLCIC_FP16: return "fp16";
        case GLCIC_BF16: return "bf16";
        default: return "?";
    }
}

/* Can a cubin built for `built` run on a GPU of compute capability `device`? Cubins run on the
 * same major architecture with an equal or newer minor; arch-specific targets (sm_90a, sm_100a,
 * which Triton uses from Hopper on) only on exactly that architecture. */
static int arch_compatible(int built, int device) {
    if (built >= 90) return built == device;
    return built / 10 == device / 10 && built <= device;
}

static int matches(const glcic_variant* v, int dtype, int cin, int cout, int ks, int dil, int act) {
    return v->dtype == dtype && v->in_channels == cin && v->out_channels == cout && v->kernel_size == ks &&
           v->dilation == dil && v->activation == act;
}

/* Index of the variant to run (the newest compatible architecture; lowest tactic if tactic == 0). */
static int find_variant(int dtype, int cin, int cout, int ks, int dil, int act, int tactic, int arch) {
    int best = -1;
    for (int i = 0; i < glcic_variant_count && i < GLCIC_MAX_VARIANTS; ++i) {
        const glcic_variant* v = &glcic_variants[i];
        if (!matches(v, dtype, cin, cout, ks, dil, act) || !arch_compatible(v->arch, arch)) continue;
        if (tactic != 0 && v->tactic != tactic) continue;
        if (best < 0 || v->arch > glcic_variants[best].arch ||
            (v->arch == glcic_variants[best].arch && v->tactic < glcic_variants[best].tactic))
            best = i;
    }
    return best;
}

int glcic_current_arch(void) {
    CUdevice device;
    int major = 0, minor = 0;
    if (cuCtxGetDevice(&device) != CUDA_SUCCESS) return -1;
    if (cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device) != CUDA_SUCCESS ||
        cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device) != CUDA_SUCCESS)
        return -1;
    return major * 10 + minor;
}

/* The loaded function of variant i in the current context (loading it on first use). */
static CUresult get_function(int i, CUfunction* function) {
    CUcontext context = NULL;
    CUresult status = cuCtxGetCurrent(&context);
    if (status != CUDA_SUCCESS) return status;
    if (context == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&g_lock);
    loaded_kernel* slot = &g_loaded[i];
    if (slot->context != context) {
        const glcic_variant* v = &glcic_variants[i];
        CUmodule module = NULL;
        CUfunction fn = NULL;
        status = cuModuleLoadData(&module, v->cubin);
        if (status == CUDA_SUCCESS) status = cuModuleGetFunction(&fn, module, v->name);
        if (status == CUDA_SUCCESS && v->shared > DEFAULT_SHARED_LIMIT)
            status = cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, v->shared);
        if (status == CUDA_SUCCESS) {
            /* A module from another (possibly destroyed) context is dropped, not unloaded here. */
            slot->context = context;
            slot->module = module;
            slot->function = fn;
        } else if (module != NULL) {
            cuModuleUnload(module);
        }
    }
    *function = slot->function;
    pthread_mutex_unlock(&g_lock);
    return status;
}

CUresult glcic_conv2d_nhwc(CUstream stream, glcic_dtype dtype, int in_channels, int out_channels,
                           int kernel_size, int dilation, int activation, int tactic,
                           int batch, int height, int width,
                           CUdeviceptr x, CUdeviceptr weight, CUdeviceptr bias, CUdeviceptr out) {
    if (batch <= 0 || height <= 0 || width <= 0) return CUDA_ERROR_INVALID_VALUE;
    int arch = glcic_current_arch();
    if (arch < 0) return CUDA_ERROR_INVALID_CONTEXT;
    int i = find_variant(dtype, in_channels, out_channels, kernel_size, dilation, activation, tactic, arch);
    if (i < 0) return GLCIC_ERROR_NO_VARIANT;
    const glcic_variant* v = &glcic_variants[i];
    CUfunction function = NULL;
    CUresult status = get_function(i, &function);
    if (status != CUDA_SUCCESS) return status;
    long long pixels = (long long)batch * height * width;
    long long grid = ((pixels + v->block_m - 1) / v->block_m) * ((out_channels + v->block_n - 1) / v->block_n);
    if (grid > 0x7fffffffLL) return CUDA_ERROR_INVALID_VALUE;
    int n = batch, h = height, w = width;
    CUdeviceptr global_scratch = 0, profile_scratch = 0;
    void* params[] = {&x, &weight, &bias, &n, &h, &w, &out, &global_scratch, &profile_scratch};
    return cuLaunchKernel(function, (unsigned)grid, 1, 1, (unsigned)(32 * v->num_warps), 1, 1, (unsigned)v->shared,
                          stream, params, NULL);
}

int glcic_conv2d_nhwc_tactics(glcic_dtype dtype, int in_channels, int out_channels, int kernel_size,
                              int dilation, int activation, int arch, int* tactics, int capacity) {
    int count = 0;
    for (int i = 0; i < glcic_variant_count; ++i) {
        const glcic_variant* v = &glcic_variants[i];
        if (!matches(v, dtype, in_channels, out_channels, kernel_size, dilation, activation) ||
            !arch_compatible(v->arch, arch))
            continue;
        int seen = 0; /* several architectures may provide the same tactic: count it once */
        for (int j = 0; j < i && !seen; ++j) {
            const glcic_variant* u = &glcic_variants[j];
            seen = matches(u, dtype, in_channels, out_channels, kernel_size, dilation, activation) &&
                   arch_compatible(u->arch, arch) && u->tactic == v->tactic;
        }
        if (seen) continue;
        if (tactics != NULL && count < capacity) tactics[count] = v->tactic;
        ++count;
    }
    return count;
}

int glcic_num_variants(void) { return glcic_variant_count; }

int glcic_describe_variant(int i, char* buffer, int size) {
    if (i < 0 || i >= glcic_variant_count || buffer == NULL || size <= 0) return -1;
    const glcic_variant* v = &glcic_variants[i];
    return snprintf(buffer, (size_t)size, "%s %d->%d k%d d%d sm_%d tile %d (%dx%d, %d warps, %d B shared)",
                    dtype_name(v->dtype), v->in_channels, v->out_channels, v->kernel_size, v->dilation, v->arch,
                    v->tactic, v->block_m, v->block_n, v->num_warps, v->shared);
}

void glcic_unload(void) {
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < glcic_variant_count && i < GLCIC_MAX_VARIANTS; ++i) {
        if (g_loaded[i].module != NULL) cuModuleUnload(g_loaded[i].module);
        memset(&g_loaded[i], 0, sizeof(g_loaded[i]));
    }
    pthread_mutex_unlock(&g_lock);
}
