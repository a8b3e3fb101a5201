// Readable printing, in PyTorch's layout: nested brackets, aligned columns, floats with four
// decimals (scientific when the magnitudes call for it), long dimensions summarized with "...".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "internal.h"

namespace strata {

namespace {

constexpr int64_t kSummarizeAbove = 1000;  // elements
constexpr int64_t kEdgeItems = 3;

struct Formatter {
  DType dtype;
  bool scientific = false;
  size_t width = 0;

  std::string format(double v) const {
    char buffer[64];
    if (dtype == DType::Bool) return v != 0.0 ? "True" : "False";
    if (!is_floating(dtype)) {
      std::snprintf(buffer, sizeof buffer, "%lld", static_cast<long long>(v));
    } else if (std::isnan(v)) {
      return "nan";
    } else if (std::isinf(v)) {
      return v > 0 ? "inf" : "-inf";
    } else if (scientific) {
      std::snprintf(buffer, sizeof buffer, "%.4e", v);
    } else {
      std::snprintf(buffer, sizeof buffer, "%.4f", v);
    }
    return buffer;
  }
};

void print_dim(std::ostringstream& out, const std::vector<double>& values, const Shape& shape,
               size_t dim, int64_t base, const Formatter& fmt, bool summarize, size_t indent) {
  const int64_t size = shape[dim];
  int64_t block = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) block *= shape[d];
  out << "[";
  for (int64_t i = 0; i < size; ++i) {
    if (summarize && size > 2 * kEdgeItems && i == kEdgeItems) {
      if (dim + 1 == shape.size()) {
        out << "..., ";
      } else {
        out << "...,\n" << std::string(indent + 1, ' ');
      }
      i = size - kEdgeItems;
    }
    if (dim + 1 == shape.size()) {
      std::string s = fmt.format(values[static_cast<size_t>(base + i)]);
      out << std::string(fmt.width - std::min(fmt.width, s.size()), ' ') << s;
    } else {
      print_dim(out, values, shape, dim + 1, base + i * block, fmt, summarize, indent + 1);
    }
    if (i + 1 < size) {
      if (dim + 1 == shape.size()) {
        out << ", ";
      } else {
        out << ',' << std::string(shape.size() - dim - 1, '\n') << std::string(indent + 1, ' ');
      }
    }
  }
  out << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  const std::vector<double> values = to_vector<double>();
  Formatter fmt{dtype()};
  if (is_floating(dtype())) {
    double largest = 0.0, smallest = INFINITY;
    for (double v : values) {
      if (!std::isfinite(v)) continue;
      largest = std::max(largest, std::fabs(v));
      if (v != 0.0) smallest = std::min(smallest, std::fabs(v));
    }
    fmt.scientific = largest >= 1e8 || (smallest < 1e-4 && std::isfinite(smallest));
  }
  for (double v : values) fmt.width = std::max(fmt.width, fmt.format(v).size());

  std::ostringstream out;
  const std::string prefix = "tensor(";
  if (dim() == 0) {
    out << prefix << fmt.format(values[0]);
  } else {
    out << prefix;
    print_dim(out, values, shape(), 0, 0, fmt, numel() > kSummarizeAbove, prefix.size());
  }
  out << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) out << ", device=" << device().str();
  if (requires_grad()) out << (grad_fn() ? ", grad_fn=" + grad_fn()->name : ", requires_grad=true");
  out << ")";
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) { return out << tensor.str(); }

}  // namespace strata
