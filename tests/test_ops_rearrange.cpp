// flip, roll, repeat, tril, triu, masked_fill, scatter_add and einsum: values and gradients
// against PyTorch (tests/data/gen_ops_rearrange.py), float64 gradchecks, and the errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using Inputs = std::vector<Tensor>;

const test::Fixture& fixture() {
  static const test::Fixture f("ops_rearrange.txt");
  return f;
}

// Float32 sums products in another order than PyTorch's float64 reference.
test::Tolerance tolerance(DType dtype) {
  return dtype == kFloat64 ? test::Tolerance{1e-12, 1e-12} : test::Tolerance{1e-5, 1e-5};
}

void expect_case(const std::string& name, const std::vector<std::string>& inputs,
                 const std::function<Tensor(const Inputs&)>& fn) {
  for (DType dtype : {kFloat64, kFloat32}) {
    test::expect_fixture_case(fixture(), name, inputs, inputs, fn, dtype, tolerance(dtype));
  }
}

TEST(OpsRearrange, FlipRollRepeatMatchPyTorch) {
  expect_case("flip_01", {"a"}, [](const Inputs& in) { return flip(in[0], {0, 2}); });
  expect_case("flip_neg", {"a"}, [](const Inputs& in) { return in[0].flip({-2}); });
  expect_case("roll_dims", {"a"}, [](const Inputs& in) { return roll(in[0], {1, -3}, {2, 0}); });
  expect_case("roll_flat", {"a"}, [](const Inputs& in) { return roll(in[0], {7}); });
  expect_case("repeat_same_rank", {"a"}, [](const Inputs& in) { return in[0].repeat({2, 1, 3}); });
  expect_case("repeat_more", {"a"}, [](const Inputs& in) { return repeat(in[0], {2, 1, 1, 2}); });
}

TEST(OpsRearrange, TrianglesMatchPyTorch) {
  expect_case("tril_0", {"a"}, [](const Inputs& in) { return tril(in[0]); });
  expect_case("tril_m1", {"a"}, [](const Inputs& in) { return tril(in[0], -1); });
  expect_case("triu_2", {"a"}, [](const Inputs& in) { return triu(in[0], 2); });
  expect_case("triu_0", {"a"}, [](const Inputs& in) { return triu(in[0]); });
}

TEST(OpsRearrange, MaskedFillAndScatterAddMatchPyTorch) {
  const Tensor mask = fixture()["masked_fill_mask"].to(kBool);
  expect_case("masked_fill", {"a"}, [&](const Inputs& in) { return in[0].masked_fill(mask, -2.5); });
  for (const auto& [name, dim] : std::vector<std::pair<std::string, int64_t>>{
           {"scatter_add_0", 0}, {"scatter_add_1", 1}}) {
    const Tensor index = fixture()[name + "_index"];
    expect_case(name, {"a", "b"},
                [&, dim = dim](const Inputs& in) { return scatter_add(in[0], dim, index, in[1]); });
  }
}

TEST(OpsRearrange, EinsumMatchesPyTorch) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"mm", "ij,jk->ik"},
      {"bmm", "bij,bjk->bik"},
      {"diag", "ii->i"},
      {"trace", "ii"},
      {"sum_all", "ij->"},
      {"transpose", "ij->ji"},
      {"outer", "i,j->ij"},
      {"implicit", "ij,jk"},
      {"ellipsis", "...ij,...jk->...ik"},
      {"three", "ij,jk,kl->il"},
      {"bilinear", "bn,anm,bm->ba"},
      {"batch_diag", "bii->bi"},
      {"contract_two", "abc,cbd->ad"},
      {"summed_label", "ij,k->i"},
      {"upper", "Ab,bC->AC"},
  };
  for (const auto& [name, equation] : cases) {
    std::vector<std::string> inputs;
    for (const char* k : {"a", "b", "c"}) {
      if (fixture().has("einsum_" + name + "_" + k)) inputs.push_back(k);
    }
    expect_case("einsum_" + name, inputs,
                [&, equation = equation](const Inputs& in) { return einsum(equation, in); });
  }
}

TEST(OpsRearrange, GradcheckInFloat64) {
  Generator gen(3);
  const auto input = [&](const Shape& shape) {
    return randn(shape, TensorOptions(kFloat64), &gen).set_requires_grad(true);
  };
  const Tensor mask = gt(randn({3, 1}, TensorOptions(kFloat64), &gen), 0.0);
  const Tensor index = from_vector<int64_t>({2, 0, 2, 1, 1, 0}, {2, 3});
  const std::vector<std::pair<std::string, std::function<Tensor(const Inputs&)>>> ops = {
      {"flip", [](const Inputs& in) { return flip(in[0], {0, 1}); }},
      {"roll", [](const Inputs& in) { return roll(in[0], {-1, 2}, {0, 1}); }},
      {"repeat", [](const Inputs& in) { return repeat(in[0], {2, 1, 2}); }},
      {"tril", [](const Inputs& in) { return tril(in[0], 1); }},
      {"masked_fill", [&](const Inputs& in) { return masked_fill(in[0], mask, 0.5); }},
      {"scatter_add", [&](const Inputs& in) { return scatter_add(in[0], 0, index, in[1]); }},
      {"einsum", [](const Inputs& in) { return einsum("ij,kj->ik", in); }},
      {"einsum_diagonal", [](const Inputs& in) { return einsum("ii,ij->j", {in[0].narrow(1, 0, 3), in[1]}); }},
  };
  for (const auto& [name, fn] : ops) {
    SCOPED_TRACE(name);
    const GradcheckResult result = gradcheck(fn, {input({3, 4}), input({3, 4})});
    EXPECT_TRUE(result.ok) << result.message;
  }
}

// src larger than index: the entries index does not reach get no gradient.
TEST(OpsRearrange, ScatterAddIgnoresSrcBeyondTheIndex) {
  Tensor x = zeros({2, 3}, kFloat64).set_requires_grad(true);
  Tensor src = test::f64({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad(true);
  const Tensor index = from_vector<int64_t>({1, 1}, {1, 2});
  const Tensor out = scatter_add(x, 0, index, src);
  test::expect_close(out, test::f64({0, 0, 0, 1, 2, 0}, {2, 3}));
  out.backward(test::f64({1, 2, 3, 4, 5, 6}, {2, 3}));
  test::expect_close(src.grad(), test::f64({4, 5, 0, 0, 0, 0}, {2, 3}));
  test::expect_close(x.grad(), test::f64({1, 2, 3, 4, 5, 6}, {2, 3}));
}

TEST(OpsRearrange, ResultsAreCopies) {
  const Tensor x = test::f64({1, 2, 3}, {3});
  for (const Tensor& y : {flip(x, {}), roll(x, {3}), repeat(x, {1}), repeat(x, {1, 1})}) {
    EXPECT_NE(y.storage(), x.storage());
    test::expect_close(y.reshape({3}), x);
  }
}

TEST(OpsRearrange, MisuseIsAnErrorNamingTheOp) {
  const Tensor x = test::f64({1, 2, 3, 4, 5, 6}, {2, 3});
  test::expect_error([&] { (void)flip(x, {0, -2}); }, {"flip", "more than once"});
  test::expect_error([&] { (void)flip(x, {2}); }, {"flip"});
  test::expect_error([&] { (void)roll(x, {1, 2}); }, {"roll", "one shift"});
  test::expect_error([&] { (void)roll(x, {1}, {0, 1}); }, {"roll", "1 shifts for 2 dims"});
  test::expect_error([&] { (void)repeat(x, {2}); }, {"repeat", "at least one per dimension"});
  test::expect_error([&] { (void)repeat(x, {2, -1}); }, {"repeat", "at least 0"});
  test::expect_error([&] { (void)tril(test::f64({1, 2}, {2})); }, {"tril", "2 dimensions"});
  test::expect_error([&] { (void)masked_fill(x, gt(x, 2.0).to(kInt64), 0.0); },
                     {"masked_fill", "bool"});
  test::expect_error([&] { (void)masked_fill(x, gt(zeros({4, 3}), 0.0), 0.0); },
                     {"masked_fill"});
  const Tensor index = from_vector<int64_t>({0, 2}, {1, 2});
  test::expect_error([&] { (void)scatter_add(x, 0, index, x); },
                     {"scatter_add", "index 2 is out of range", "size 2"});
  test::expect_error([&] { (void)scatter_add(x, 1, index, x.to(kFloat32)); },
                     {"scatter_add", "dtype"});
  test::expect_error([&] { (void)einsum("ij,jk->ik", {x}); }, {"einsum", "2 input terms"});
  test::expect_error([&] { (void)einsum("ijk->i", {x}); }, {"einsum", "2 dimensions", "names 3"});
  test::expect_error([&] { (void)einsum("i1->i", {x}); }, {"einsum", "not a letter"});
  test::expect_error([&] { (void)einsum("ij->z", {x}); }, {"einsum", "no input has"});
  test::expect_error([&] { (void)einsum("ij->ii", {x}); }, {"einsum", "repeats"});
  test::expect_error([&] { (void)einsum("ij,ij->i", {x, x.t()}); }, {"einsum", "size"});
  test::expect_error([&] { (void)einsum("ii->i", {x}); }, {"einsum", "diagonal"});
  test::expect_error([&] { (void)einsum("i->i", {}); }, {"einsum", "no operands"});
}

}  // namespace
}  // namespace strata
