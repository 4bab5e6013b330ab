#pragma once
// tpp: tensor processing primitives with approximate-multiply policies. The umbrella header.

#include "approx/registry.hpp"
#include "core/bf16.hpp"
#include "core/error.hpp"
#include "core/mat.hpp"
#include "core/parallel.hpp"
#include "core/simd.hpp"
#include "core/types.hpp"
#include "ops/binary.hpp"
#include "ops/gemm.hpp"
#include "ops/norm.hpp"
#include "ops/quantize.hpp"
#include "ops/reduce.hpp"
#include "ops/sparse.hpp"
#include "ops/ternary.hpp"
#include "ops/transform.hpp"
#include "ops/unary.hpp"
