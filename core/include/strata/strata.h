// The umbrella header: everything a user of Strata needs.
#pragma once

#include "strata/autograd.h"
#include "strata/backend.h"
#include "strata/device.h"
#include "strata/dtype.h"
#include "strata/error.h"
#include "strata/generator.h"
#include "strata/nn/functional.h"
#include "strata/nn/init.h"
#include "strata/nn/layers.h"
#include "strata/nn/loss.h"
#include "strata/nn/module.h"
#include "strata/nn/recurrent.h"
#include "strata/ops.h"
#include "strata/shape.h"
#include "strata/tensor.h"
#include "strata/version.h"
