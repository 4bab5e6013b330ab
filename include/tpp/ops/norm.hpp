#pragma once
// The normalisations of 2D views, forward and backward, every product through the multiply policy:
//   ops/norm/batchnorm.hpp  batchnorm over channels as columns (NHWC as (N H W, C)) or rows, with the
//                           moments or LightNorm's range estimate of the variance, fused relu
//   ops/norm/groupnorm.hpp  groupnorm; layernorm (groupnorm of one group, one value per channel); RMSNorm
//   ops/norm/common.hpp     what they share: notation, block statistics merged in double, extremes,
//                           element types, aliasing, scratch, argument checks
// Softmax, log-softmax and cross-entropy are ops/softmax.hpp.

#include "norm/batchnorm.hpp"
#include "norm/groupnorm.hpp"
