// The optimizer suite: first-order optimizers over parameter groups (optim/optimizer.h),
// L-BFGS (optim/lbfgs.h), the Adam-to-SGD switch (optim/swats.h) and learning-rate
// schedulers (optim/scheduler.h).
#pragma once

#include "strata/optim/lbfgs.h"
#include "strata/optim/optimizer.h"
#include "strata/optim/scheduler.h"
#include "strata/optim/swats.h"
