// Reference tensors produced once by PyTorch (tests/data/gen_*.py, written through
// tests/data/fixtures.py) and read here, so the tests compare against PyTorch without needing
// it. `load_fixture("nn_conv.txt")` reads $STRATA_TEST_DATA/nn_conv.txt (ctest sets the
// variable; a direct run falls back to the source tree's tests/data).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {

// The path of a file in tests/data ($STRATA_TEST_DATA overrides the folder).
inline std::string data_path(const std::string& name) {
  const char* dir = std::getenv("STRATA_TEST_DATA");
  return std::string(dir ? dir : STRATA_TEST_DATA_DIR) + "/" + name;
}

class Fixture {
 public:
  explicit Fixture(const std::string& file) : file_(file) {
    const std::string path = data_path(file);
    std::ifstream in(path);
    STRATA_CHECK(in.good(), "fixture: cannot open ", path);
    std::string header;
    while (std::getline(in, header)) {
      if (header.empty() || header[0] == '#') continue;
      std::istringstream h(header);
      std::string name, kind;
      int64_t rank = 0;
      h >> name >> kind >> rank;
      Shape shape(static_cast<size_t>(rank));
      for (auto& s : shape) h >> s;
      std::string values_line;
      std::getline(in, values_line);
      std::istringstream v(values_line);
      const auto n = static_cast<size_t>(numel_of(shape));
      if (kind == "i64") {
        std::vector<int64_t> values(n);
        for (auto& x : values) v >> x;
        tensors_[name] = from_vector(values).reshape(shape);  // reshape: 0-d included
      } else {
        STRATA_CHECK(kind == "f64", "fixture ", path, ": unknown kind ", kind, " of ", name);
        std::vector<double> values(n);
        for (auto& x : values) x = read_double(v);
        tensors_[name] = from_vector(values).reshape(shape);  // reshape: 0-d included
      }
      STRATA_CHECK(!v.fail(), "fixture ", path, ": too few values for ", name);
    }
  }

  // One float64 value; strtod also reads the "nan", "inf" and "-inf" that Python's %.17g
  // writes (operator>> does not). Sets failbit when the token is not a number.
  static double read_double(std::istream& in) {
    std::string token;
    if (!(in >> token)) return 0.0;
    char* end = nullptr;
    const double value = std::strtod(token.c_str(), &end);
    if (end != token.c_str() + token.size()) in.setstate(std::ios::failbit);
    return value;
  }

  // The tensor stored under `name` (float64 or int64, on the CPU).
  const Tensor& operator[](const std::string& name) const {
    auto it = tensors_.find(name);
    STRATA_CHECK(it != tensors_.end(), "fixture ", file_, " has no tensor named ", name);
    return it->second;
  }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }

 private:
  std::string file_;
  std::map<std::string, Tensor> tensors_;
};

// Runs the fixture case `name` in `dtype`: inputs name_<k> (converted to dtype; those listed in
// grad_of require grad), upstream gradient name_g, and compares fn's output with name_out and
// the inputs' gradients with name_grad_<k>, within `tol`.
inline void expect_fixture_case(const Fixture& f, const std::string& name,
                                const std::vector<std::string>& inputs,
                                const std::vector<std::string>& grad_of,
                                const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                DType dtype, Tolerance tol) {
  SCOPED_TRACE(name + " " + dtype_name(dtype));
  std::vector<Tensor> leaves;
  std::vector<bool> wants;
  for (const auto& k : inputs) {
    Tensor t = f[name + "_" + k].to(dtype).clone();
    const bool want = std::find(grad_of.begin(), grad_of.end(), k) != grad_of.end();
    if (want) t.set_requires_grad(true);
    leaves.push_back(t);
    wants.push_back(want);
  }
  Tensor out = fn(leaves);
  EXPECT_EQ(out.dtype(), dtype);
  expect_close(out, f[name + "_out"], tol.rtol, tol.atol);
  out.backward(f[name + "_g"].to(dtype));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wants[i]) continue;
    SCOPED_TRACE("gradient of " + inputs[i]);
    expect_close(leaves[i].grad(), f[name + "_grad_" + inputs[i]], tol.rtol, tol.atol);
  }
}

}  // namespace strata::test
