// STRATA_HOST_DEVICE marks a function written once for the host and for CUDA device code
// (inline on the host; __host__ __device__ under nvcc).
#pragma once

#if defined(__CUDACC__)
#define STRATA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define STRATA_HOST_DEVICE inline
#endif
