#pragma once
// Quantization of 2D views to the low-precision formats of the seed papers, and back. One header per format
// (each with its variants, rounding, special values and accuracy in its own doc block):
//
//   quantize/int8.hpp         int8 / uint8 codes with scales and zero points per tensor, row or column:
//                             compute_quant_params, quantize, dequantize, requantize (int32 -> int8); the
//                             family's only Policy products (P(x, 1 / s), P(q - z, s), P(acc, s))
//   quantize/fixed_point.hpp  16-bit <IL, FL> fixed point (Gupta et al. 2015): quantize_fixed (round to nearest
//                             or stochastic), dequantize_fixed
//   quantize/bf16.hpp         fp32 -> bf16, round to nearest or stochastic: round_to_bf16
//   quantize/bfp.hpp          block floating point (LightNorm), a shared exponent per block of B values:
//                             bfp_quantize, bfp_dequantize, bfp_fake_quant
//   quantize/pow2.hpp         power of two (SmartDeal), 0 or +-2^k: pow2_quantize, pow2_encode, pow2_decode
//   quantize/binary.hpp       binary / ternary (QNN) bit packing and the exact binary GEMM (xnor + popcount):
//                             binarize, ternarize, unpack_binary, unpack_ternary, binary_gemm
//   quantize/common.hpp       what they share: rounding, stochastic_params and rounding_bits (stochastic
//                             rounding's counter-based bits, reproducible under any tiling), the row loops
//
// Every format has a kernel object made once for a shape and its params, called with views (inputs, then
// outputs, then a tpp::workspace where it needs scratch), and a free function taking the views, then the
// params. Single-threaded; safe inside a caller's parallel region. An output may be the very same view as an
// input of the same element type where a header says so (the fake-quant ops: in place); any other overlap of
// an output with an input or another output throws tpp::error.

#include "quantize/bf16.hpp"
#include "quantize/bfp.hpp"
#include "quantize/binary.hpp"
#include "quantize/common.hpp"
#include "quantize/fixed_point.hpp"
#include "quantize/int8.hpp"
#include "quantize/pow2.hpp"
