// Losses as objects, for code that passes a criterion around (a training loop, say):
//   nn::CrossEntropyLoss criterion;            // or nn::CrossEntropyLoss({.label_smoothing = 0.1})
//   Tensor loss = criterion(logits, labels);
// Each holds only its settings and calls the function of the same name in nn::functional
// (see there, and docs/nn/losses.md, for the definitions); none has parameters, so unlike
// PyTorch's they are not Modules.
#pragma once

#include "strata/nn/functional.h"

namespace strata::nn {

using functional::CrossEntropyOptions;
using functional::Reduction;

struct CrossEntropyLoss {
  CrossEntropyOptions options;
  Tensor operator()(const Tensor& logits, const Tensor& target) const {
    return functional::cross_entropy(logits, target, options);
  }
};

struct NLLLoss {
  Tensor weight;
  Reduction reduction = Reduction::Mean;
  int64_t ignore_index = -100;
  Tensor operator()(const Tensor& log_probs, const Tensor& target) const {
    return functional::nll_loss(log_probs, target, weight, reduction, ignore_index);
  }
};

struct BCELoss {
  Tensor weight;
  Reduction reduction = Reduction::Mean;
  Tensor operator()(const Tensor& probs, const Tensor& target) const {
    return functional::binary_cross_entropy(probs, target, weight, reduction);
  }
};

struct BCEWithLogitsLoss {
  Tensor weight;
  Reduction reduction = Reduction::Mean;
  Tensor pos_weight;
  Tensor operator()(const Tensor& logits, const Tensor& target) const {
    return functional::binary_cross_entropy_with_logits(logits, target, weight, reduction,
                                                        pos_weight);
  }
};

struct MSELoss {
  Reduction reduction = Reduction::Mean;
  Tensor operator()(const Tensor& input, const Tensor& target) const {
    return functional::mse_loss(input, target, reduction);
  }
};

struct L1Loss {
  Reduction reduction = Reduction::Mean;
  Tensor operator()(const Tensor& input, const Tensor& target) const {
    return functional::l1_loss(input, target, reduction);
  }
};

struct HuberLoss {
  Reduction reduction = Reduction::Mean;
  double delta = 1.0;
  Tensor operator()(const Tensor& input, const Tensor& target) const {
    return functional::huber_loss(input, target, reduction, delta);
  }
};

struct SmoothL1Loss {
  Reduction reduction = Reduction::Mean;
  double beta = 1.0;
  Tensor operator()(const Tensor& input, const Tensor& target) const {
    return functional::smooth_l1_loss(input, target, reduction, beta);
  }
};

struct HingeLoss {
  Reduction reduction = Reduction::Mean;
  double margin = 1.0;
  Tensor operator()(const Tensor& scores, const Tensor& target) const {
    return functional::hinge_loss(scores, target, reduction, margin);
  }
};

struct MultiMarginLoss {
  Reduction reduction = Reduction::Mean;
  double margin = 1.0;
  Tensor weight;
  Tensor operator()(const Tensor& scores, const Tensor& target) const {
    return functional::multi_margin_loss(scores, target, reduction, margin, weight);
  }
};

struct ExponentialLoss {
  Reduction reduction = Reduction::Mean;
  Tensor operator()(const Tensor& scores, const Tensor& target) const {
    return functional::exponential_loss(scores, target, reduction);
  }
};

struct PerceptronLoss {
  Reduction reduction = Reduction::Mean;
  Tensor operator()(const Tensor& scores, const Tensor& target) const {
    return functional::perceptron_loss(scores, target, reduction);
  }
};

}  // namespace strata::nn
