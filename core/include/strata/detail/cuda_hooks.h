// The seam between core/ and cuda/: defined in cuda/ when the CUDA backend is compiled in,
// and in cuda/stub/cuda_unavailable.cpp when it is not. Nothing else in core/ knows about CUDA.
#pragma once

#include <cstddef>
#include <string>

namespace strata {
class Backend;
}

namespace strata::detail {

// Number of CUDA devices usable; 0 with `why` set ("CUDA backend not compiled in", "no CUDA
// device found: cudaGetDeviceCount returned ...") when there are none.
int cuda_device_count(std::string* why);

// The backend of CUDA device `index`; callers have checked 0 <= index < count.
Backend& cuda_backend(int index);

// Page-locked ("pinned") host memory, which the GPU reads by DMA without a staging copy:
// nullptr when there is no CUDA device or cudaHostAlloc fails. Free with cuda_host_free.
void* cuda_host_alloc(size_t nbytes);
void cuda_host_free(void* ptr);

}  // namespace strata::detail
