/* The table generate.py writes and glcic_kernels_runtime.c reads (not part of the public API). */
#ifndef GLCIC_KERNELS_INTERNAL_H
#define GLCIC_KERNELS_INTERNAL_H

#include <stddef.h>

#include "glcic_kernels.h"

typedef struct {
    int dtype;              /* glcic_dtype */
    int in_channels, out_channels, kernel_size, dilation, activation;
    int tactic;             /* 1-based tile index */
    int arch;               /* sm_XX the cubin was built for (Triton builds sm_90 as sm_90a) */
    int block_m, block_n;   /* output tile: pixels x channels */
    int num_warps;
    int shared;             /* dynamic shared memory per block, bytes */
    const unsigned char* cubin;
    size_t cubin_size;
    const char* name;       /* kernel symbol */
} glcic_variant;

extern const glcic_variant glcic_variants[];
extern const int glcic_variant_count;

#endif /* GLCIC_KERNELS_INTERNAL_H */
