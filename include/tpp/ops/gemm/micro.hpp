#pragma once
// The GEMM micro-kernel and what sizes it (ops/gemm.hpp is the interface): block sizes from a step's
// register needs, one MR x NR tile of C kept in registers over a K slice, the tiles of one packed block
// (edge tiles through a local tile, the epilogue on each finished tile while it is in L1).
//
// The micro-kernel runs a step (approx/gemm_traits.hpp): acc = Step::step(acc, a, b) for each product,
// on lanes V = simd::lane (an xsimd batch, or float with TPP_NO_SIMD).

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "../../approx/gemm_traits.hpp"
#include "../../arch/dot.hpp"
#include "../../arch/registers.hpp"
#include "../../core/bf16.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../epilogue.hpp"

namespace tpp::detail {

inline constexpr index_t gemm_width = simd::enabled ? simd::width<> : 1;

// Block sizes for a step that needs `temporaries` registers besides the accumulators and the B vectors. The
// micro-tile is MR rows x NV vectors (NR = NV lanes-wide columns): 14 x 2 = 28 accumulators for an FMA step
// on a 32-register file (AVX-512, AArch64), 6 x 2 on 16 registers (AVX2, SSE2); steps with temporaries
// need rows fewer: 12 x 2 (4 x 2) for up to 2, 10 x 2 (3 x 2) for up to 4, 4 x 2 for a policy's SIMD mul.
// KC x NR of B stays in L1, MC x KC of A in L2, and KC x NC of B (512 KiB) in L2 as well: with A read in
// place or cheaply packed, a B panel that fits L2 pays more than fewer A repacks.
//
// Narrow: for a C of at most one vector of columns (a layer's few output channels), one vector by twice
// the rows (at most 16): the same accumulators, none of them on columns past n.
template <int temporaries, bool narrow = false>
struct blocking_for {
  static constexpr int registers = arch::vector_registers;
  static constexpr index_t wide_mr = !simd::enabled      ? 4
                                     : temporaries == 0 ? (registers == 32 ? 14 : 6)
                                     : temporaries <= 2 ? (registers == 32 ? 12 : 4)
                                     : temporaries <= 4 ? (registers == 32 ? 10 : 3)
                                                        : 4;
  static constexpr index_t mr = narrow && simd::enabled ? std::min<index_t>(2 * wide_mr, 16) : wide_mr;
  static constexpr index_t nv = !simd::enabled ? 4 : narrow ? 1 : 2;
  static constexpr index_t nr = nv * gemm_width;
  static constexpr index_t kc = 256;
  static constexpr index_t mc = mr * (168 / mr);
  static constexpr index_t nc = nr * (512 / nr);
};

// The blocking of policy P's main path (its packed or ieee step, else the careful step).
template <class P>
using gemm_blocking = blocking_for<approx::step_temporaries<P>>;
template <class P>
using gemm_blocking_narrow = blocking_for<approx::step_temporaries<P>, true>;

// An MR x NR tile of fp32 C (row stride ldc) = alpha acc + (first K slice ? beta C, never reading C when
// beta = 0 : C): the end of every fp32 micro-kernel.
template <index_t MR, index_t NV, class V>
void gemm_store_tile(const V (&acc)[MR][NV], float* c, index_t ldc, float alpha, float beta, bool first) noexcept {
  constexpr index_t W = gemm_width;
#pragma GCC unroll 16
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < NV; ++v) {
      float* p = c + r * ldc + v * W;
      V x = acc[r][v] * V(alpha);
      if (!first)
        x = x + tpp::lanes::load<V>(p);
      else if (beta != 0.0f)
        x = tpp::lanes::fma(V(beta), tpp::lanes::load<V>(p), x);
      tpp::lanes::store(p, x);
    }
}

// The micro-kernel: an MR x NR tile of fp32 C (row stride ldc) = alpha * (a sliver x b sliver) + (first
// K slice ? beta * C, never reading C when beta = 0 : C). The A sliver is packed (a[k * MR + r]) or, with
// Direct, MR rows of an fp32 A read in place (a[r * lda + k]). The row loops are unrolled by pragma so
// the accumulators stay in registers (GCC 12 otherwise may keep the array on the stack).
template <class Step, index_t MR, index_t NV, bool Direct = false>
void gemm_micro(index_t kc, const float* a, index_t lda, const float* b, float* c, index_t ldc, float alpha,
                float beta, bool first) noexcept {
  using V = simd::lane;
  constexpr index_t W = gemm_width, NR = NV * W;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (index_t r = 0; r < MR; ++r)
    for (index_t v = 0; v < NV; ++v) acc[r][v] = V(0.0f);
  for (index_t k = 0; k < kc; ++k) {
    decltype(approx::step_b_operand<Step>(V())) bv[NV];
    for (index_t v = 0; v < NV; ++v) bv[v] = approx::step_b_operand<Step>(tpp::lanes::load<V>(b + k * NR + v * W));
#pragma GCC unroll 16
    for (index_t r = 0; r < MR; ++r) {
      const auto av = approx::step_a_operand<Step>(V(Direct ? a[r * lda + k] : a[k * MR + r]));
      for (index_t v = 0; v < NV; ++v) acc[r][v] = Step::step(acc[r][v], av, bv[v]);
    }
  }
  gemm_store_tile<MR, NV>(acc, c, ldc, alpha, beta, first);
}

// Where a block's results go: fp32 C, alpha and beta, whether this is the first K slice (beta applies; C
// is never read when beta = 0) and the last (the epilogue then runs on each finished tile while it is in
// L1), the epilogue and the coordinates of c's origin in the caller's whole C.
template <class E>
struct gemm_out {
  mat<float> c;
  float alpha, beta;
  bool first, last;
  const E* ep;
  index_t gi, gj;
};

// The tiles of one (mc, nc) block of C: micro(ir, jr, rows, out, ldo, alpha, beta, first) computes the
// MR x NR tile at block offset (ir, jr) (rows of it valid) into out; full tiles go straight to C, edge
// tiles through a local tile of which only the valid part is written. Then the epilogue, after the last
// K slice, on each finished tile while it is in L1.
template <index_t MR, index_t NR, class E, class Micro>
void gemm_tiles(const gemm_out<E>& o, index_t i0, index_t mc, index_t j0, index_t nc, float* tile, const Micro& micro) {
  const mat<float>& c = o.c;
  for (index_t jr = 0; jr < nc; jr += NR) {
    const index_t cols = std::min(NR, nc - jr);
    for (index_t ir = 0; ir < mc; ir += MR) {
      const index_t rows = std::min(MR, mc - ir);
      float* cp = c.row(i0 + ir) + j0 + jr;
      if (rows == MR && cols == NR) {
        micro(ir, jr, rows, cp, c.ld, o.alpha, o.beta, o.first);
      } else {
        micro(ir, jr, rows, tile, NR, 1.0f, 0.0f, true);
        for (index_t r = 0; r < rows; ++r)
          for (index_t q = 0; q < cols; ++q) {
            float& out = cp[r * c.ld + q];
            const float x = o.alpha * tile[r * NR + q];
            out = !o.first ? x + out : o.beta != 0.0f ? std::fma(o.beta, out, x) : x;
          }
      }
      if constexpr (!std::is_same_v<E, epilogue::none>)
        if (o.last)
          for (index_t r = 0; r < rows; ++r) (*o.ep)(o.gi + i0 + ir + r, o.gj + j0 + jr, cp + r * c.ld, cols);
    }
  }
}

// The micro-kernel over one (mc, kc) A block and packed (kc, nc) B panel. A is packed at ap, or, when
// a_direct is set, read in place (rows lda apart) for full MR-row slivers, with only the edge sliver
// packed at ap.
template <class Step, index_t MR, index_t NV, class E>
void gemm_block(const float* ap, const float* a_direct, index_t lda, const float* bp, const gemm_out<E>& o,
                index_t i0, index_t mc, index_t j0, index_t nc, index_t kc, float* tile) {
  gemm_tiles<MR, NV * gemm_width>(o, i0, mc, j0, nc, tile,
                                  [&](index_t ir, index_t jr, index_t rows, float* out, index_t ldo, float alpha,
                                      float beta, bool first) {
                                    const float* bs = bp + jr * kc;
                                    if (a_direct != nullptr && rows == MR)
                                      gemm_micro<Step, MR, NV, true>(kc, a_direct + ir * lda, lda, bs, out, ldo,
                                                                     alpha, beta, first);
                                    else
                                      gemm_micro<Step, MR, NV>(kc, ap + ir * kc, 0, bs, out, ldo, alpha, beta, first);
                                  });
}

// bf16 x bf16 on the ieee path where the compiler targets AVX512_BF16: both operands are packed as K-pairs
// (gemm_pack_groups<S, 2>), two bf16 in one 32-bit word, and the micro-kernel runs unchanged over kc / 2
// pair-steps, each one vdpbf16ps (two products and two adds per lane). The instruction rounds after each
// add and flushes denormals: within the fp32 accumulation bound, but not IEEE FMA bit for bit.
template <class P, class TA, class TB>
inline constexpr bool gemm_bf16_pairs = arch::has_dot_bf16 && simd::enabled &&
                                        approx::gemm_traits<P>::path == approx::gemm_path::ieee &&
                                        std::is_same_v<TA, bf16> && std::is_same_v<TB, bf16>;

struct bf16_pair_step {
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    if constexpr (arch::has_dot_bf16 && !std::is_same_v<V, float>)
      return arch::dot_bf16_pairs(acc, a, b);
    else
      return acc;  // never instantiated: gemm_bf16_pairs is false without the instruction
  }
};

}  // namespace tpp::detail
