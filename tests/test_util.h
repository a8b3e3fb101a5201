// Helpers shared by the core tests: tensors from host values, element-by-element comparison
// with tolerances `atol + rtol * |expected|` tied to the dtype (STYLE rule 11), deterministic
// random host data that does not depend on Strata's own generator, and a gradcheck wrapper.
// A failed comparison prints both shapes, the number of bad elements and the worst one.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <source_location>
#include <sstream>
#include <string>
#include <vector>

#include "strata/strata.h"

namespace strata::test {

// ---- tolerances ---------------------------------------------------------------------------
struct Tolerance {
  double rtol;
  double atol;
};

// Defaults for results of a handful of roundings, compared with a reference computed in double
// from the same (exactly representable) inputs.
inline Tolerance default_tolerance(DType dtype) {
  switch (dtype) {
    // f32: eps is 1.2e-7; 1e-5 relative leaves ~80 ulps for a few chained ops / short sums.
    case DType::Float32: return {1e-5, 1e-6};
    // f64: eps is 2.2e-16; 1e-10 leaves room for summation order without hiding a wrong formula.
    case DType::Float64: return {1e-10, 1e-12};
    // Integers and bools compare exactly.
    default: return {0.0, 0.0};
  }
}

// The looser of two dtypes' defaults (f32 vs f64 compares at f32 tolerance).
inline Tolerance default_tolerance(DType a, DType b) {
  const Tolerance ta = default_tolerance(a), tb = default_tolerance(b);
  return {std::max(ta.rtol, tb.rtol), std::max(ta.atol, tb.atol)};
}

// ---- building tensors ---------------------------------------------------------------------
inline Tensor f64(const std::vector<double>& values, const Shape& shape = {},
                  bool requires_grad = false) {
  Tensor t = from_vector<double>(values, shape);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}
inline Tensor f32(const std::vector<float>& values, const Shape& shape = {}) {
  return from_vector<float>(values, shape);
}
inline Tensor i64(const std::vector<int64_t>& values, const Shape& shape = {}) {
  return from_vector<int64_t>(values, shape);
}
inline Tensor u8(const std::vector<uint8_t>& values, const Shape& shape = {}) {
  return from_vector<uint8_t>(values, shape);
}
inline Tensor boolean(const std::vector<bool>& values, const Shape& shape = {}) {
  return from_vector<bool>(values, shape);
}

// n values uniform in [lo, hi) from a fixed seed (std::mt19937, not Strata's generator).
inline std::vector<double> uniform_values(size_t n, double lo, double hi, uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> out(n);
  for (auto& v : out) v = dist(engine);
  return out;
}

// As uniform_values, but every value is at least `margin` away from each of `avoid`
// (keeps finite differences off kinks such as |x| at 0 or clamp's bounds).
inline std::vector<double> uniform_avoiding(size_t n, double lo, double hi,
                                            const std::vector<double>& avoid, double margin,
                                            uint32_t seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> out;
  while (out.size() < n) {
    const double v = dist(engine);
    bool ok = true;
    for (double a : avoid) ok = ok && std::abs(v - a) >= margin;
    if (ok) out.push_back(v);
  }
  return out;
}

// n distinct values spaced at least `gap` apart, in shuffled order (no ties for max/min).
inline std::vector<double> distinct_values(size_t n, double gap, uint32_t seed) {
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = (static_cast<double>(i) - static_cast<double>(n) / 2) * gap;
  std::mt19937 engine(seed);
  std::shuffle(out.begin(), out.end(), engine);
  return out;
}

inline Tensor random_f64(const Shape& shape, double lo, double hi, uint32_t seed,
                         bool requires_grad = false) {
  return f64(uniform_values(static_cast<size_t>(numel_of(shape)), lo, hi, seed), shape,
             requires_grad);
}

// Float32 random tensor; the values are exactly representable, so references computed in
// double from to_vector<double>() see the same inputs.
inline Tensor random_f32(const Shape& shape, double lo, double hi, uint32_t seed) {
  const auto d = uniform_values(static_cast<size_t>(numel_of(shape)), lo, hi, seed);
  return f32(std::vector<float>(d.begin(), d.end()), shape);
}

inline std::vector<double> values_of(const Tensor& t) { return t.to_vector<double>(); }

// ---- comparing ----------------------------------------------------------------------------
inline std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t size = std::max<int64_t>(shape[d], 1);
    idx[d] = flat % size;
    flat /= size;
  }
  std::ostringstream out;
  out << "[";
  for (size_t d = 0; d < idx.size(); ++d) out << (d ? "," : "") << idx[d];
  out << "]";
  return out.str();
}

// Compares `actual` (any dtype, read as double) with `expected` values of `shape`.
inline ::testing::AssertionResult values_close(const Tensor& actual, const Shape& shape,
                                               const std::vector<double>& expected, double rtol,
                                               double atol) {
  if (!actual.defined()) return ::testing::AssertionFailure() << "actual tensor is undefined";
  if (actual.shape() != shape) {
    return ::testing::AssertionFailure() << "shape mismatch: actual " << shape_str(actual.shape())
                                         << " expected " << shape_str(shape);
  }
  const std::vector<double> got = actual.to_vector<double>();
  if (got.size() != expected.size()) {
    return ::testing::AssertionFailure() << "element count mismatch: actual " << got.size()
                                         << " expected " << expected.size() << " (shape "
                                         << shape_str(shape) << ")";
  }
  constexpr double kInf = std::numeric_limits<double>::infinity();
  int64_t bad = 0, worst = -1;
  double worst_ratio = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double a = got[i], e = expected[i];
    bool ok;
    double ratio;
    if (std::isnan(a) || std::isnan(e)) {
      ok = std::isnan(a) && std::isnan(e);
      ratio = ok ? 0.0 : kInf;
    } else if (std::isinf(a) || std::isinf(e)) {
      ok = a == e;
      ratio = ok ? 0.0 : kInf;
    } else {
      const double diff = std::abs(a - e), bound = atol + rtol * std::abs(e);
      ok = diff <= bound;
      ratio = bound > 0 ? diff / bound : (diff > 0 ? kInf : 0.0);
    }
    if (!ok) {
      ++bad;
      if (worst < 0 || ratio > worst_ratio) {
        worst = static_cast<int64_t>(i);
        worst_ratio = ratio;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  auto fail = ::testing::AssertionFailure();
  fail << bad << " of " << got.size() << " elements differ (shape " << shape_str(shape) << ", "
       << dtype_name(actual.dtype()) << ", rtol " << rtol << ", atol " << atol << "); worst at "
       << index_str(worst, shape) << ": actual " << got[static_cast<size_t>(worst)]
       << " expected " << expected[static_cast<size_t>(worst)] << " (diff "
       << std::abs(got[static_cast<size_t>(worst)] - expected[static_cast<size_t>(worst)])
       << ")";
  if (got.size() <= 16) {
    fail << "\n  actual:  ";
    for (double v : got) fail << v << " ";
    fail << "\n  expected:";
    for (double v : expected) fail << " " << v;
  }
  return fail;
}

// Element-by-element comparison of two tensors; shapes must match exactly. A negative rtol or
// atol means the dtype default (the looser of the two dtypes).
inline void expect_close(const Tensor& actual, const Tensor& expected, double rtol = -1,
                         double atol = -1,
                         std::source_location loc = std::source_location::current()) {
  if (!actual.defined() || !expected.defined()) {
    ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line())) << "undefined tensor";
    return;
  }
  const Tolerance tol = default_tolerance(actual.dtype(), expected.dtype());
  if (rtol < 0) rtol = tol.rtol;
  if (atol < 0) atol = tol.atol;
  auto result = values_close(actual, expected.shape(), expected.to_vector<double>(), rtol, atol);
  if (!result) {
    ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line()))
        << "expect_close(actual " << shape_str(actual.shape()) << " "
        << dtype_name(actual.dtype()) << ", expected " << shape_str(expected.shape()) << " "
        << dtype_name(expected.dtype()) << "): " << result.message();
  }
}

// Compares `actual` with host values of `shape`; tolerances default to actual's dtype.
inline void expect_values(const Tensor& actual, const Shape& shape,
                          const std::vector<double>& expected, double rtol = -1,
                          double atol = -1,
                          std::source_location loc = std::source_location::current()) {
  if (!actual.defined()) {
    ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line())) << "undefined tensor";
    return;
  }
  const Tolerance tol = default_tolerance(actual.dtype());
  if (rtol < 0) rtol = tol.rtol;
  if (atol < 0) atol = tol.atol;
  auto result = values_close(actual, shape, expected, rtol, atol);
  if (!result) {
    ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line())) << result.message();
  }
}

// As expect_values, and also checks the dtype.
inline void expect_tensor(const Tensor& actual, DType dtype, const Shape& shape,
                          const std::vector<double>& expected, double rtol = -1,
                          double atol = -1,
                          std::source_location loc = std::source_location::current()) {
  if (actual.defined() && actual.dtype() != dtype) {
    ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line()))
        << "dtype mismatch: actual " << dtype_name(actual.dtype()) << " expected "
        << dtype_name(dtype);
  }
  expect_values(actual, shape, expected, rtol, atol, loc);
}

// ---- gradients ----------------------------------------------------------------------------
using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Float64 gradcheck of fn at inputs; fails with gradcheck's message (or the thrown error).
inline void expect_gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs,
                             GradcheckOptions options = {},
                             std::source_location loc = std::source_location::current()) {
  try {
    const GradcheckResult result = gradcheck(fn, inputs, options);
    if (!result.ok) {
      ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line()))
          << "gradcheck failed: " << result.message;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line()))
        << "gradcheck threw: " << e.what();
  }
}

// ---- errors -------------------------------------------------------------------------------
// Runs fn, which must throw strata::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts,
                  std::source_location loc = std::source_location::current()) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& part : parts) {
      if (message.find(part) == std::string::npos) {
        ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line()))
            << "strata::Error message lacks \"" << part << "\": " << message;
      }
    }
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line()))
        << "threw a non-strata exception: " << e.what();
    return;
  }
  ADD_FAILURE_AT(loc.file_name(), static_cast<int>(loc.line())) << "did not throw strata::Error";
}

}  // namespace strata::test
