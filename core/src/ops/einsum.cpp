// einsum: Einstein summation over labelled dimensions, lowered to the differentiable
// primitives (sum, permute, reshape, expand, index_select, batched matmul), so its gradient
// and every backend come with them. Operands are folded left to right; each pair is one
// batched matrix product:
//   left  [batch..., left-only..., contracted...]  ->  [B, L, C]
//   right [batch..., contracted..., right-only...] ->  [B, C, R]   product [B, L, R]
// where batch labels are in both and still needed (by the output or a later operand),
// contracted ones are in both and needed no more. A label that only one operand has and
// nothing needs is summed away first; a label repeated in one operand ("ii") takes the
// diagonal.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "internal.h"

namespace strata {

namespace {

using Labels = std::vector<int>;  // one per dimension: a letter (0..51) or an ellipsis position

constexpr int kLetters = 52;  // 'A'..'Z' then 'a'..'z', torch's order for implicit outputs

int letter_label(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' : c - 'a' + 26; }
bool is_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// One term of the equation ("ij", "...ij"): its letters and where "..." stands (-1: nowhere).
struct Term {
  Labels letters;
  int ellipsis_at = -1;  // the number of letters before "..."
};

Term parse_term(const std::string& text, const std::string& equation) {
  Term term;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "...") == 0) {
      STRATA_CHECK(term.ellipsis_at < 0, "einsum: \"...\" appears twice in \"", text,
                   "\" of \"", equation, "\"");
      term.ellipsis_at = static_cast<int>(term.letters.size());
      i += 2;
    } else {
      STRATA_CHECK(is_letter(text[i]), "einsum: '", text[i], "' in \"", equation,
                   "\" is not a letter (labels are a-z and A-Z; \"...\" stands for several ",
                   "dimensions)");
      term.letters.push_back(letter_label(text[i]));
    }
  }
  return term;
}

// The labels of a term for an operand of `rank` dimensions; "..." covers the dimensions the
// letters leave, labelled by their position counted from the right (so ellipses of different
// lengths broadcast as NumPy aligns shapes). `ellipsis_rank` grows to the longest.
Labels expand_term(const Term& term, int64_t rank, int& ellipsis_rank, int operand,
                   const std::string& equation) {
  const int64_t letters = static_cast<int64_t>(term.letters.size());
  if (term.ellipsis_at < 0) {
    STRATA_CHECK(rank == letters, "einsum: operand ", operand, " has ", rank,
                 " dimensions but its term in \"", equation, "\" names ", letters);
    return term.letters;
  }
  STRATA_CHECK(rank >= letters, "einsum: operand ", operand, " has ", rank,
               " dimensions, fewer than the ", letters, " letters of its term in \"", equation,
               "\"");
  const int covered = static_cast<int>(rank - letters);
  ellipsis_rank = std::max(ellipsis_rank, covered);
  Labels labels(term.letters.begin(), term.letters.begin() + term.ellipsis_at);
  for (int k = covered; k >= 1; --k) labels.push_back(kLetters + k - 1);  // k-th from the right
  labels.insert(labels.end(), term.letters.begin() + term.ellipsis_at, term.letters.end());
  return labels;
}

int64_t position(const Labels& labels, int label) {
  return std::find(labels.begin(), labels.end(), label) - labels.begin();
}

// The diagonal of dimensions p < q (equal sizes n) of t: both removed, one of size n appended.
Tensor take_diagonal(const Tensor& t, int64_t p, int64_t q) {
  std::vector<int64_t> order;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d != p && d != q) order.push_back(d);
  }
  order.insert(order.end(), {p, q});
  const int64_t n = t.size(p);
  Shape flat(t.shape());
  flat.erase(flat.begin() + q);
  flat.erase(flat.begin() + p);
  flat.push_back(n * n);
  const Tensor along = arange(0.0, static_cast<double>(n * n), static_cast<double>(n + 1),
                              TensorOptions(DType::Int64).device(t.device()));
  return index_select(t.permute(order).reshape(flat), t.dim() - 2, along);
}

// An operand with its labels, as the fold carries it.
struct Labelled {
  Tensor tensor;
  Labels labels;
};

// Sums away the dimensions whose labels `needed` does not contain.
Labelled sum_unneeded(Labelled x, const std::vector<bool>& needed) {
  std::vector<int64_t> dims;
  Labels kept;
  for (size_t d = 0; d < x.labels.size(); ++d) {
    if (needed[static_cast<size_t>(x.labels[d])]) {
      kept.push_back(x.labels[d]);
    } else {
      dims.push_back(static_cast<int64_t>(d));
    }
  }
  if (!dims.empty()) x.tensor = sum(x.tensor, dims);
  x.labels = kept;
  return x;
}

// The size of every label, checked to agree between operands (1 broadcasts).
void record_sizes(const Labelled& x, std::map<int, int64_t>& sizes, int operand,
                  const std::string& equation) {
  for (size_t d = 0; d < x.labels.size(); ++d) {
    const int label = x.labels[d];
    const int64_t size = x.tensor.size(static_cast<int64_t>(d));
    auto [it, inserted] = sizes.emplace(label, size);
    if (inserted || it->second == size || size == 1) continue;
    STRATA_CHECK(it->second == 1, "einsum: operand ", operand, " has size ", size,
                 " for a label of \"", equation, "\" that has size ", it->second,
                 " elsewhere (sizes must match, or be 1 to broadcast)");
    it->second = size;
  }
}

// x permuted to the label order `order` (a permutation of its labels) and expanded to `sizes`.
Tensor arranged(const Labelled& x, const Labels& order, const std::map<int, int64_t>& sizes) {
  std::vector<int64_t> permutation;
  Shape shape;
  for (int label : order) {
    permutation.push_back(position(x.labels, label));
    shape.push_back(sizes.at(label));
  }
  return x.tensor.permute(permutation).expand(shape);
}

int64_t product(const Labels& labels, const std::map<int, int64_t>& sizes) {
  int64_t n = 1;
  for (int label : labels) n *= sizes.at(label);
  return n;
}

// a and b as one batched matrix product; keeps the labels `needed` marks.
Labelled contract(const Labelled& a, const Labelled& b, const std::vector<bool>& needed,
                  const std::map<int, int64_t>& sizes) {
  Labels batch, contracted, left, right;
  for (int label : a.labels) {
    const bool in_b = position(b.labels, label) < static_cast<int64_t>(b.labels.size());
    if (!in_b) {
      left.push_back(label);
    } else if (needed[static_cast<size_t>(label)]) {
      batch.push_back(label);
    } else {
      contracted.push_back(label);
    }
  }
  for (int label : b.labels) {
    if (position(a.labels, label) == static_cast<int64_t>(a.labels.size())) right.push_back(label);
  }
  Labels a_order = batch, b_order = batch;
  a_order.insert(a_order.end(), left.begin(), left.end());
  a_order.insert(a_order.end(), contracted.begin(), contracted.end());
  b_order.insert(b_order.end(), contracted.begin(), contracted.end());
  b_order.insert(b_order.end(), right.begin(), right.end());
  const int64_t nb = product(batch, sizes), nl = product(left, sizes),
                nc = product(contracted, sizes), nr = product(right, sizes);
  const Tensor product_3d = matmul(arranged(a, a_order, sizes).reshape({nb, nl, nc}),
                                   arranged(b, b_order, sizes).reshape({nb, nc, nr}));
  Labelled out;
  out.labels = batch;
  out.labels.insert(out.labels.end(), left.begin(), left.end());
  out.labels.insert(out.labels.end(), right.begin(), right.end());
  Shape shape;
  for (int label : out.labels) shape.push_back(sizes.at(label));
  out.tensor = product_3d.reshape(shape);
  return out;
}

}  // namespace

Tensor einsum(const std::string& text, const std::vector<Tensor>& operands) {
  std::string equation;
  for (char c : text) {
    if (c != ' ') equation.push_back(c);
  }
  STRATA_CHECK(!operands.empty(), "einsum: no operands for \"", equation, "\"");
  for (size_t i = 0; i < operands.size(); ++i) {
    detail::check_defined(operands[i], "einsum", ("operand " + std::to_string(i)).c_str());
    if (i > 0) detail::check_same_device(operands[0], operands[i], "einsum");
    STRATA_CHECK(operands[i].dtype() == operands[0].dtype(), "einsum: the operands must share ",
                 "a dtype, got ", detail::describe(operands[0]), " and ",
                 detail::describe(operands[i]), " (operand ", i, ")");
  }
  // Two or more operands meet in matrix products, which take floating tensors.
  STRATA_CHECK(operands.size() == 1 || is_floating(operands[0].dtype()), "einsum: products of ",
               "operands need floating tensors, got ", detail::describe(operands[0]));

  // ---- parse ------------------------------------------------------------------------------
  const size_t arrow = equation.find("->");
  const std::string inputs_text = equation.substr(0, arrow);
  std::vector<Term> terms;
  for (size_t start = 0;;) {
    const size_t comma = inputs_text.find(',', start);
    terms.push_back(parse_term(inputs_text.substr(start, comma - start), equation));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  STRATA_CHECK(terms.size() == operands.size(), "einsum: \"", equation, "\" has ", terms.size(),
               " input terms but ", operands.size(), " operands were given");
  int ellipsis_rank = 0;
  std::vector<Labelled> items;
  std::vector<int> count(kLetters + 64, 0);  // appearances of each label over the operands
  for (size_t i = 0; i < operands.size(); ++i) {
    STRATA_CHECK(operands[i].dim() <= 64, "einsum: operand ", i, " has more than 64 dimensions");
    Labelled item{operands[i], expand_term(terms[i], operands[i].dim(), ellipsis_rank,
                                           static_cast<int>(i), equation)};
    // Counted before diagonals merge repeats: "ii" uses i twice, so i is summed ("ii" is the
    // trace), as the implicit output rule wants.
    for (int label : item.labels) ++count[static_cast<size_t>(label)];
    // A label twice in one operand: its diagonal.
    for (size_t p = 0; p < item.labels.size(); ++p) {
      for (size_t q = p + 1; q < item.labels.size(); ++q) {
        if (item.labels[p] != item.labels[q]) continue;
        STRATA_CHECK(item.tensor.size(static_cast<int64_t>(p)) ==
                         item.tensor.size(static_cast<int64_t>(q)),
                     "einsum: operand ", i, " repeats a label of \"", equation,
                     "\" over dimensions of sizes ", item.tensor.size(static_cast<int64_t>(p)),
                     " and ", item.tensor.size(static_cast<int64_t>(q)), " (a diagonal needs ",
                     "equal sizes)");
        item.tensor = take_diagonal(item.tensor, static_cast<int64_t>(p),
                                    static_cast<int64_t>(q));
        const int label = item.labels[p];
        item.labels.erase(item.labels.begin() + static_cast<int64_t>(q));
        item.labels.erase(item.labels.begin() + static_cast<int64_t>(p));
        item.labels.push_back(label);
        p = static_cast<size_t>(-1);  // rescan: the labels moved
        break;
      }
    }
    items.push_back(std::move(item));
  }
  Labels output;
  if (arrow != std::string::npos) {
    const Term out_term = parse_term(equation.substr(arrow + 2), equation);
    for (size_t k = 0; k < out_term.letters.size(); ++k) {
      const int label = out_term.letters[k];
      STRATA_CHECK(count[static_cast<size_t>(label)] > 0, "einsum: the output of \"", equation,
                   "\" has a label no input has");
      STRATA_CHECK(std::count(out_term.letters.begin(), out_term.letters.end(), label) == 1,
                   "einsum: the output of \"", equation, "\" repeats a label");
    }
    const int at = out_term.ellipsis_at;
    output.assign(out_term.letters.begin(),
                  out_term.letters.begin() + (at < 0 ? 0 : at));
    if (at >= 0) {
      for (int k = ellipsis_rank; k >= 1; --k) output.push_back(kLetters + k - 1);
    }
    output.insert(output.end(), out_term.letters.begin() + (at < 0 ? 0 : at),
                  out_term.letters.end());
    if (at < 0) output.assign(out_term.letters.begin(), out_term.letters.end());
  } else {
    // Implicit: the ellipsis dimensions, then the letters used once, in label order.
    for (int k = ellipsis_rank; k >= 1; --k) output.push_back(kLetters + k - 1);
    for (int label = 0; label < kLetters; ++label) {
      if (count[static_cast<size_t>(label)] == 1) output.push_back(label);
    }
  }

  // ---- fold ---------------------------------------------------------------------------------
  std::map<int, int64_t> sizes;
  for (size_t i = 0; i < items.size(); ++i) {
    record_sizes(items[i], sizes, static_cast<int>(i), equation);
  }
  // needed_after[i]: the labels the output or operands i+1.. use.
  std::vector<bool> in_output(kLetters + 64, false);
  for (int label : output) in_output[static_cast<size_t>(label)] = true;
  std::vector<std::vector<bool>> needed_after(items.size(), in_output);
  for (size_t i = items.size(); i-- > 1;) {
    needed_after[i - 1] = needed_after[i];
    for (int label : items[i].labels) needed_after[i - 1][static_cast<size_t>(label)] = true;
  }
  // Each operand first sums the labels nothing else uses.
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<bool> needed = needed_after[i];
    for (size_t j = 0; j < i; ++j) {
      for (int label : items[j].labels) needed[static_cast<size_t>(label)] = true;
    }
    items[i] = sum_unneeded(items[i], needed);
  }
  Labelled result = items[0];
  for (size_t i = 1; i < items.size(); ++i) {
    result = contract(result, items[i], needed_after[i], sizes);
  }
  result = sum_unneeded(result, in_output);
  // Output labels missing from the result were size-1 broadcasts of summed operands: none
  // can be missing, since every output label is in some operand and never summed.
  Tensor out = arranged(result, output, sizes);
  return out.is_same(operands[0]) ? out.clone() : out;
}

}  // namespace strata
