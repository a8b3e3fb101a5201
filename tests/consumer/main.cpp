// Uses an installed Strata from outside its build: a matrix product, its backward pass, and a
// check of the values against ones worked out by hand; with CUDA compiled in, also that the
// installed CUDA backend loads (a device count, or the driver's reason for none). Exits 0 when
// every check passes.
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <strata/detail/cuda_hooks.h>
#include <strata/strata.h>

namespace {

bool expect_values(const char* what, const strata::Tensor& tensor,
                   const std::vector<float>& expected) {
  const std::vector<float> got = tensor.to_vector<float>();
  bool ok = got.size() == expected.size();
  for (size_t i = 0; ok && i < got.size(); ++i) {
    ok = std::fabs(got[i] - expected[i]) <= 1e-5f * (1.0f + std::fabs(expected[i]));
  }
  if (!ok) {
    std::printf("MISMATCH in %s: got %s\n", what, tensor.str().c_str());
  }
  return ok;
}

}  // namespace

int run() {
  using namespace strata;
  std::printf("Strata %s, CUDA available: %s\n", kVersion, cuda_is_available() ? "yes" : "no");

  // a: [2, 3], b: [3, 2]
  Tensor a = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3},
                         TensorOptions().requires_grad());
  Tensor b = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {3, 2},
                         TensorOptions().requires_grad());
  Tensor c = matmul(a, b);  // [2, 2]
  Tensor loss = c.sum();
  loss.backward();

  std::printf("c = a @ b =\n%s\n", c.str().c_str());
  std::printf("loss = %g\n", static_cast<double>(loss.item<float>()));
  std::printf("a.grad =\n%s\n", a.grad().str().c_str());

  bool ok = true;
  ok &= expect_values("c", c, {22, 28, 49, 64});
  ok &= expect_values("loss", loss, {163});
  ok &= expect_values("a.grad", a.grad(), {3, 7, 11, 3, 7, 11});  // ones[2,2] @ b^T
  ok &= expect_values("b.grad", b.grad(), {5, 5, 7, 7, 9, 9});    // a^T @ ones[2,2]
#if defined(STRATA_WITH_CUDA)
  std::string why;
  if (strata::detail::cuda_device_count(&why) == 0) {
    std::printf("CUDA: %s\n", why.c_str());
    if (why.find("cannot load") != std::string::npos) ok = false;
  }
#endif
  std::printf("%s\n", ok ? "consumer: OK" : "consumer: FAILED");
  return ok ? 0 : 1;
}

int main() {
  try {
    return run();
  } catch (const std::exception& error) {
    std::printf("consumer: FAILED with an exception: %s\n", error.what());
    return 1;
  }
}
