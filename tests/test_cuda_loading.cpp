// The CUDA backend is loaded on first use (core/src/cuda_hooks.cpp): a process that only uses
// the CPU never maps cuBLAS or cuDNN, and the first CUDA request loads the plugin (in a shared
// build with CUDA) and answers with the device count or the driver's reason, never with a
// failure to load. The lazy part runs in a child process (this binary, one case of it), since
// earlier cases of this process may have asked for CUDA already.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "strata/detail/cuda_hooks.h"
#include "strata/strata.h"

namespace strata {
namespace {

std::string mapped_files() {
  std::ifstream maps("/proc/self/maps");
  std::ostringstream text;
  text << maps.rdbuf();
  return text.str();
}

constexpr const char* kChildVariable = "STRATA_TEST_CUDA_LOADING_CHILD";

// Runs in the child only: CPU work first, then the first CUDA request.
TEST(CudaLoadingChild, CpuWorkMapsNoCudaLibraries) {
  if (std::getenv(kChildVariable) == nullptr) {
    GTEST_SKIP() << "runs as the child process of CudaLoading.CpuProgramsDoNotLoadCuda";
  }
  // A static build with CUDA links the libraries in: nothing is lazy there.
  const bool lazy = !detail::cuda_libraries_loaded();
  Tensor a = ones({8, 8});
  Tensor loss = matmul(a, a.t()).sum();
  EXPECT_FLOAT_EQ(loss.item<float>(), 512.0f);
  const std::string maps = mapped_files();
  ASSERT_NE(maps, "") << "/proc/self/maps is not readable";
  if (lazy) {
    EXPECT_FALSE(detail::cuda_libraries_loaded());
    EXPECT_EQ(maps.find("libstrata_cuda"), std::string::npos) << "CPU work loaded the plugin";
    EXPECT_EQ(maps.find("libcublas"), std::string::npos) << "CPU work loaded cuBLAS";
    EXPECT_EQ(maps.find("libcudnn"), std::string::npos) << "CPU work loaded cuDNN";
  }

  std::string why;
  const int count = detail::cuda_device_count(&why);
#if defined(STRATA_WITH_CUDA)
  EXPECT_TRUE(detail::cuda_libraries_loaded());
  EXPECT_EQ(why.find("cannot load"), std::string::npos) << why;
  if (count == 0) {
    EXPECT_NE(why.find("no CUDA device found"), std::string::npos) << why;
  }
#else
  EXPECT_EQ(count, 0);
  EXPECT_FALSE(detail::cuda_libraries_loaded());
  EXPECT_NE(why.find("without the CUDA backend"), std::string::npos) << why;
#endif
}

TEST(CudaLoading, CpuProgramsDoNotLoadCuda) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = std::string(kChildVariable) + "=1 '" + self +
                              "' --gtest_filter=CudaLoadingChild.* > /dev/null 2>&1";
  // The child's own expectations decide its exit status.
  const int status = std::system(command.c_str());
  EXPECT_EQ(status, 0) << "the child process failed; run `" << command
                       << "` without the redirection to see why";
}

TEST(CudaLoading, FirstRequestGivesACountOrAReason) {
  std::string why;
  const int count = detail::cuda_device_count(&why);
  EXPECT_GE(count, 0);
  if (count == 0) {
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find("cannot load"), std::string::npos) << why;
    EXPECT_THROW(static_cast<void>(zeros({2}).to(Device(kCUDA, 0))), Error);
  }
  EXPECT_EQ(cuda_device_count(), count);
}

}  // namespace
}  // namespace strata
