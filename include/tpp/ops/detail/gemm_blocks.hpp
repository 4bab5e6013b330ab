#pragma once
// GEMM internals (ops/gemm.hpp is the interface): the per-policy fast paths applied while packing, block
// sizes, the packing routine, the micro-kernel and the loop over one packed block. Everything here works
// on fp32 slivers; the drivers in gemm.hpp pick the path and run the cache-blocked loops.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../approx/bf16.hpp"
#include "../../approx/drum.hpp"
#include "../../approx/exact.hpp"
#include "../../approx/mbm.hpp"
#include "../../approx/mitchell.hpp"
#include "../../approx/policy.hpp"
#include "../../core/bf16.hpp"
#include "../../core/mat.hpp"
#include "../../arch/dot.hpp"
#include "../../core/simd.hpp"
#include "../epilogue.hpp"

namespace tpp {

// C = alpha op(A) op(B) + beta C (ops/gemm.hpp): the parameters every GEMM entry point takes.
struct gemm_params {
  float alpha = 1.0f, beta = 0.0f;
  bool trans_a = false, trans_b = false;
};

namespace detail {

template <class T>
concept gemm_element = std::is_same_v<std::remove_const_t<T>, float> || std::is_same_v<std::remove_const_t<T>, bf16>;

inline constexpr index_t gemm_width = simd::enabled ? simd::width<> : 1;

// Lane helpers, templated on the lane type V (simd::lane) so the branch not taken is never instantiated.
template <class V>
V lane_load(const float* p) noexcept {
  if constexpr (std::is_same_v<V, float>)
    return *p;
  else
    return V::load_unaligned(p);
}

template <class V>
void lane_store(float* p, V v) noexcept {
  if constexpr (std::is_same_v<V, float>)
    *p = v;
  else
    v.store_unaligned(p);
}

template <class V>
V lane_fma(V a, V b, V c) noexcept {
  return simd::fma(a, b, c);
}

// ---- fast paths: policies whose product is f(g(a) * g(b)), with g applied while packing (O(n^2)) -------
//
// drum<K>, K <= 12: g reduces each operand to its K leading bits with the lowest set; the reduced
//   operands multiply exactly in fp32, so FMA(g(a), g(b), acc) == acc + drum<K>::mul(a, b) bit for bit.
// bf16_rz / bf16_rne: g rounds each operand to bf16; their fp32 product is exact, f rounds it to bf16:
//   acc + f(g(a) g(b)) == acc + bf16_*::mul(a, b) bit for bit.
// mitchell<M>: g truncates each operand to M mantissa bits; packed A also has the bias 127 << 23 taken
//   off its bit pattern (a_offset), so one integer add of the packed patterns is the product's pattern,
//   sign included (the sign bits' carry falls off bit 31). Zero operands pack as a marker (A) or 0 (B)
//   and the lanes they touch add nothing.
// Both only while no product can leave the normal range and no operand is NaN or Inf: packing records
// each panel's exponent range (panel_range), and a block pair that fails the check runs the generic
// micro-kernel on unmodified operands instead (the careful path).
template <class P>
struct gemm_fast {
  static constexpr bool available = false;
};

// Zeros and denormals pack as signed zeros (the policies flush denormal operands); NaN and Inf as they are.
template <class G>
float pack_operand(float x, G&& g) noexcept {
  const std::uint32_t u = approx::detail::bits(x), e = u & approx::detail::exp_mask;
  if (e == 0) return approx::detail::from_bits(u & approx::detail::sign_bit);
  if (e == approx::detail::exp_mask) return x;
  return g(x);
}

template <int K>
  requires(K <= 12)
struct gemm_fast<approx::drum<K>> {
  static constexpr bool available = true;
  static constexpr int temporaries = 0;  // the step is one FMA
  static constexpr int carry = 1;        // a product of two significands in [1, 2) is below 4
  static constexpr int low_margin = 0;   // products_in_range: exponents below the product's that must be normal
  static constexpr std::uint32_t a_offset = 0;
  static float pack(float x) noexcept {
    return pack_operand(x, [](float v) {
      using core = approx::detail::drum_core<K>;
      return approx::detail::from_bits((approx::detail::bits(v) & core::keep) | core::lsb);
    });
  }
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    return lane_fma(a, b, acc);
  }
};

// The operands of a step: the packed values as loaded, or, for a step with prepare_a / prepare_b, what
// it derives from each once per load (per broadcast A value, per B vector) rather than once per product.
template <class Step, class V>
auto step_a_operand(V x) noexcept {
  if constexpr (requires { Step::prepare_a(x); })
    return Step::prepare_a(x);
  else
    return x;
}
template <class Step, class V>
auto step_b_operand(V x) noexcept {
  if constexpr (requires { Step::prepare_b(x); })
    return Step::prepare_b(x);
  else
    return x;
}

// The log-multiplier step shared by mitchell and mbm: acc + Product::value(a, b) of packed operands,
// where the packed patterns' integer sum is Mitchell's product; lanes that a zero operand touches (the
// A marker a_zero, or a B pattern +-0) add nothing when the block holds zeros (a_zeros, b_zeros).
// Product::bits(x) gives an operand's packed pattern.
template <class Product, std::uint32_t a_zero, bool a_zeros, bool b_zeros>
struct log_step {
  template <class V>
  static auto prepare_a(V x) noexcept {
    return step_a_operand<Product>(x);
  }
  template <class V>
  static auto prepare_b(V x) noexcept {
    return step_b_operand<Product>(x);
  }
  template <class V, class O>
  static V step(V acc, const O& a, const O& b) noexcept {
    if constexpr (std::is_same_v<V, float>) {
      const std::uint32_t ua = approx::detail::bits(Product::bits(a)), ub = approx::detail::bits(Product::bits(b));
      const bool dead = (a_zeros && ua == a_zero) || (b_zeros && (ub & approx::detail::abs_mask) == 0);
      return dead ? acc : acc + Product::value(a, b);
    } else {
      using A = typename V::arch_type;
      using I = xsimd::batch<std::int32_t, A>;
      const V sum = acc + Product::value(a, b);
      if constexpr (!a_zeros && !b_zeros) {
        return sum;
      } else {
        const I ua = xsimd::bitwise_cast<I>(Product::bits(a));
        const I abs_b = xsimd::bitwise_cast<I>(Product::bits(b)) & I(std::int32_t(approx::detail::abs_mask));
        if constexpr (a_zeros && b_zeros)
          return xsimd::select(xsimd::bool_cast((ua != I(std::int32_t(a_zero))) && (abs_b != I(0))), sum, acc);
        else if constexpr (a_zeros)
          return xsimd::select(xsimd::bool_cast(ua != I(std::int32_t(a_zero))), sum, acc);
        else
          return xsimd::select(xsimd::bool_cast(abs_b != I(0)), sum, acc);
      }
    }
  }
};

// The integer sum of two packed patterns as a float (lane for lane).
template <class V>
V add_patterns(V a, V b) noexcept {
  if constexpr (std::is_same_v<V, float>) {
    return approx::detail::from_bits(approx::detail::bits(a) + approx::detail::bits(b));
  } else {
    using I = xsimd::batch<std::int32_t, typename V::arch_type>;
    return xsimd::bitwise_cast<V>(xsimd::bitwise_cast<I>(a) + xsimd::bitwise_cast<I>(b));
  }
}

// x & mask (+ add) on the bit patterns of every lane.
template <class V>
V mask_pattern(V x, std::uint32_t mask, std::uint32_t add = 0) noexcept {
  if constexpr (std::is_same_v<V, float>) {
    return approx::detail::from_bits((approx::detail::bits(x) & mask) + add);
  } else {
    using I = xsimd::batch<std::int32_t, typename V::arch_type>;
    return xsimd::bitwise_cast<V>((xsimd::bitwise_cast<I>(x) & I(std::int32_t(mask))) + I(std::int32_t(add)));
  }
}

template <int M>
struct gemm_fast<approx::mitchell<M>> {
  static constexpr bool available = true;
  static constexpr int temporaries = 2;
  static constexpr int carry = 1;
  static constexpr int low_margin = 0;
  static constexpr std::uint32_t a_offset = approx::detail::one_bits;
  static constexpr std::uint32_t a_zero = 0u - a_offset;  // a packed zero: no normal operand maps here
  static float pack(float x) noexcept {
    if ((approx::detail::bits(x) & approx::detail::exp_mask) == 0) return 0.0f;  // +-0, denormals: one +0
    return pack_operand(x, [](float v) {
      return approx::detail::from_bits(approx::detail::bits(v) & approx::detail::keep_mask<M>);
    });
  }
  struct product {
    template <class V>
    static V bits(V x) noexcept {
      return x;
    }
    template <class V>
    static V value(V a, V b) noexcept {
      return add_patterns(a, b);
    }
  };
  // Without zeros in the block the step is one integer add and one fp32 add per product.
  static constexpr bool zero_specialised = true;
  template <bool a_zeros, bool b_zeros>
  using zero_step = log_step<product, a_zero, a_zeros, b_zeros>;
};

// mbm<M>: Mitchell's packed sum P plus the correction c 2^(Ea + Eb), c = 0.078125 = 1.25 2^-4, added as
// fma(c 2^Ea, 2^Eb, P): both factors are powers of two (times 1.25) taken from the packed patterns' sign
// and exponent fields once per loaded operand, so their product is exact and the fma rounds P + c 2^(Ea+Eb)
// once, which is 2^(Ea+Eb) (mitchell_core + c) rounded: mbm::mul bit for bit while the correction is
// normal (low_margin: Ea + Eb >= -122) and the result below the range top (carry 2: r < 4.08).
template <class V>
struct mbm_operand {
  V packed, scale;
};

template <int M>
struct gemm_fast<approx::mbm<M>> {
  using mitchell = gemm_fast<approx::mitchell<M>>;
  static constexpr bool available = true;
  static constexpr int temporaries = 4;
  static constexpr int carry = 2;
  static constexpr int low_margin = 4;
  static constexpr std::uint32_t a_offset = mitchell::a_offset;
  static constexpr std::uint32_t a_zero = mitchell::a_zero;
  static float pack(float x) noexcept { return mitchell::pack(x); }
  static constexpr std::uint32_t sign_exp = 0xff800000u;
  struct product {
    // A's packed pattern has 127 taken off its exponent field (a_offset): its sign and exponent fields
    // plus 123 in the exponent and 0.25 in the mantissa are c 2^Ea = 1.25 2^(Ea - 4) (normal: low_margin
    // also asks Ea >= -122). B's sign and exponent fields are 2^Eb.
    template <class V>
    static mbm_operand<V> prepare_a(V x) noexcept {
      return {x, mask_pattern(x, sign_exp, (123u << 23) | (1u << 21))};
    }
    template <class V>
    static mbm_operand<V> prepare_b(V x) noexcept {
      return {x, mask_pattern(x, sign_exp)};
    }
    template <class V>
    static V bits(const mbm_operand<V>& x) noexcept {
      return x.packed;
    }
    template <class V>
    static V value(const mbm_operand<V>& a, const mbm_operand<V>& b) noexcept {
      return lane_fma(a.scale, b.scale, add_patterns(a.packed, b.packed));
    }
  };
  static constexpr bool zero_specialised = true;
  template <bool a_zeros, bool b_zeros>
  using zero_step = log_step<product, a_zero, a_zeros, b_zeros>;
};

template <bool nearest_even>
struct gemm_fast_bf16 {
  static constexpr bool available = true;
  static constexpr int temporaries = 2;
  static constexpr int carry = 2;  // rounding the product may carry it into the next binade
  static constexpr int low_margin = 0;
  static constexpr std::uint32_t a_offset = 0;
  static float pack(float x) noexcept {
    return pack_operand(x, [](float v) { return approx::detail::bf16_multiplier<nearest_even>::round(v); });
  }
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    if constexpr (std::is_same_v<V, float>)
      return acc + approx::detail::bf16_multiplier<nearest_even>::round(a * b);
    else
      return acc + approx::detail::bf16_multiplier<nearest_even>::template round<typename V::arch_type>(a * b);
  }
};
template <>
struct gemm_fast<approx::bf16_rz> : gemm_fast_bf16<false> {};
template <>
struct gemm_fast<approx::bf16_rne> : gemm_fast_bf16<true> {};

// The biased exponents of a packed panel's nonzero values, whether it holds a NaN or Inf, and whether it
// holds a zero (padding excluded: padded lanes are never stored).
struct panel_range {
  int emin = 255, emax = 0;
  bool special = false, zeros = false;  // zeros: a zero (or flushed denormal) among the panel's values
  void add(float v) noexcept {
    const int e = int((approx::detail::bits(v) >> 23) & 0xffu);
    if (e == 255) special = true;
    if (e == 0) zeros = true;
    if (e != 0 && e != 255) {
      emin = std::min(emin, e);
      emax = std::max(emax, e);
    }
  }
  bool empty() const noexcept { return emax == 0; }
};

// Every product of a value of one panel and one of the other stays in the normal range.
template <class F>
bool products_in_range(const panel_range& a, const panel_range& b) noexcept {
  if (a.special || b.special) return false;
  if (a.empty() || b.empty()) return true;
  constexpr int low = F::low_margin;  // mbm: its correction term, 2^-4 below the product, must be normal too
  return a.emin - low >= 1 && a.emin + b.emin - 127 - low >= 1 && a.emax + b.emax - 127 + F::carry <= 254;
}

// Block sizes. The micro-tile is MR rows x NV vectors (NR = NV lanes-wide columns): 14 x 2 zmm = 28
// accumulators for FMA on a 32-register file (AVX-512, AArch64), 6 x 2 on 16 registers (AVX2, SSE2);
// policies need registers for their step's temporaries: 12 x 2 (4 x 2) for the bf16 and mitchell fast paths,
// 10 x 2 (3 x 2) for mbm's (its operands carry a scale each), 4 x 2 for a generic SIMD mul. KC x NR of B stays in L1,
// MC x KC of A in L2, and KC x NC of B (512 KiB) in L2 as well: with A read in place or cheaply packed,
// a B panel that fits L2 pays more than fewer A repacks (2048^3: 0.84x -> 0.92x oneDNN with NC 3072 -> 512).
template <class P>
struct gemm_blocking {
#if defined(__aarch64__)
  static constexpr int registers = 32;
#else
  static constexpr int registers = gemm_width == 16 ? 32 : 16;
#endif
  static constexpr int temporaries = [] {
    if constexpr (std::is_same_v<P, approx::exact>)
      return 0;
    else if constexpr (gemm_fast<P>::available)
      return gemm_fast<P>::temporaries;
    else
      return 8;  // a generic SIMD mul
  }();
  static constexpr index_t mr = !simd::enabled      ? 4
                                : temporaries == 0 ? (registers == 32 ? 14 : 6)
                                : temporaries <= 2 ? (registers == 32 ? 12 : 4)
                                : temporaries <= 4 ? (registers == 32 ? 10 : 3)
                                                   : 4;
  static constexpr index_t nv = !simd::enabled ? 4 : 2;
  static constexpr index_t nr = nv * gemm_width;
  static constexpr index_t kc = 256;
  static constexpr index_t mc = mr * (168 / mr);
  static constexpr index_t nc = nr * (512 / nr);
};

// The generic step: FMA for exact, acc + Policy::mul(a, b) otherwise.
template <class P>
struct policy_step {
  template <class V>
  static V step(V acc, V a, V b) noexcept {
    if constexpr (std::is_same_v<P, approx::exact>)
      return lane_fma(a, b, acc);
    else
      return acc + P::mul(a, b);
  }
};

// Packs S-wide slivers: for sliver indices [s0, s0 + sn) (rows i of op(A), or columns j of op(B)) and K
// [k0, k0 + kc), sliver t holds, for each k, S values, the ones past sn zero. The element for (s, k) is
// x(k, s) when k_major (the stored rows run along K: a transposed A, an untransposed B), else x(s, k).
// g: the per-operand transform of a fast path (or identity); r: the panel's range, when recorded (real
// elements only, not the zero padding).
struct identity_pack {
  float operator()(float x) const noexcept { return x; }
};

template <index_t S, class T, class G = identity_pack>
void gemm_pack(const mat<const T>& x, bool k_major, index_t s0, index_t sn, index_t k0, index_t kc, float* out,
               G g = {}, panel_range* r = nullptr) noexcept {
  for (index_t t = 0; t < sn; t += S) {
    const index_t w = std::min(S, sn - t);
    float* o = out + t * kc;
    if (k_major) {  // the sliver's S values are contiguous in each stored row
      for (index_t k = 0; k < kc; ++k) {
        const T* src = x.row(k0 + k) + s0 + t;
        for (index_t q = 0; q < w; ++q) o[k * S + q] = g(to_float(src[q]));
        for (index_t q = w; q < S; ++q) o[k * S + q] = 0.0f;
        if (r != nullptr)
          for (index_t q = 0; q < w; ++q) r->add(o[k * S + q]);
      }
    } else {
      for (index_t q = 0; q < w; ++q) {
        const T* src = x.row(s0 + t + q) + k0;
        for (index_t k = 0; k < kc; ++k) o[k * S + q] = g(to_float(src[k]));
        if (r != nullptr)
          for (index_t k = 0; k < kc; ++k) r->add(o[k * S + q]);
      }
      for (index_t q = w; q < S; ++q)
        for (index_t k = 0; k < kc; ++k) o[k * S + q] = 0.0f;
    }
  }
}

// op(A) rows [i0, i0 + mc) x K [p0, p0 + kc) as MR-row slivers.
template <index_t MR, class T, class G = identity_pack>
void gemm_pack_a(const mat<const T>& a, bool trans, index_t i0, index_t mc, index_t p0, index_t kc, float* out,
                 G g = {}, panel_range* r = nullptr) noexcept {
  gemm_pack<MR>(a, trans, i0, mc, p0, kc, out, g, r);
}

// op(B) K [p0, p0 + kc) x columns [j0, j0 + nc) as NR-column slivers.
template <index_t NR, class T, class G = identity_pack>
void gemm_pack_b(const mat<const T>& b, bool trans, index_t p0, index_t kc, index_t j0, index_t nc, float* out,
                 G g = {}, panel_range* r = nullptr) noexcept {
  gemm_pack<NR>(b, !trans, j0, nc, p0, kc, out, g, r);
}

// bf16 x bf16 with approx::exact where the compiler targets AVX512_BF16: both operands are packed as
// K-pairs, two bf16 in one 32-bit word (the earlier k in the low half, a zero past K), stored in the fp32
// buffers as bit patterns; the micro-kernel then runs unchanged over kc / 2 pair-steps, each one
// vdpbf16ps (two products and two adds per lane). The instruction rounds after each add and flushes
// denormals: within the fp32 accumulation bound, but not IEEE FMA bit for bit (documented in gemm.hpp).
template <class P, class TA, class TB>
inline constexpr bool gemm_bf16_pairs = arch::has_dot_bf16 && simd::enabled && std::is_same_v<P, approx::exact> &&
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

// The K-group form of gemm_pack for the dot-product instructions: G consecutive k of one element share a
// 32-bit word, in fields of 32 / G bits, the earlier k in the lower field (G = 2: bf16 pairs for
// vdpbf16ps; G = 4: 8-bit quads for vpdpbusd). Sliver t holds, for each group p < ceil(kc / G), S words,
// word q = {x(s, k0 + G p + f)} for s = s0 + t + q (words past sn zero, zero fields past kc); the words
// are stored in the fp32 buffer as bit patterns. Full slivers and whole groups take branch-free loops
// the compiler vectorises (k_major: G stored rows interleaved; otherwise a group is one 32-bit load);
// edge slivers and a last partial group go element by element.
template <class T>
std::uint32_t group_field(T v) noexcept {
  if constexpr (std::is_same_v<T, bf16>)
    return v.bits;
  else
    return std::uint8_t(v);
}

template <index_t S, index_t G, class T>
void gemm_pack_groups(const mat<const T>& x, bool k_major, index_t s0, index_t sn, index_t k0, index_t kc,
                      float* out) noexcept {
  static_assert(sizeof(T) * G == 4, "tpp: a K group fills one 32-bit word");
  constexpr int bits = 32 / G;
  const index_t groups = (kc + G - 1) / G, whole = kc / G;
  auto at = [&](index_t s, index_t k) -> std::uint32_t {
    if (k >= kc) return 0;
    return group_field(k_major ? x(k0 + k, s) : x(s, k0 + k));
  };
  for (index_t t = 0; t < sn; t += S) {
    const index_t w = std::min(S, sn - t);
    float* o = out + t * groups;
    index_t p_done = 0;
    if (w == S && k_major) {
      for (index_t p = 0; p < whole; ++p) {
        const T* r0 = x.row(k0 + G * p) + s0 + t;
        for (index_t q = 0; q < S; ++q) {
          std::uint32_t word = 0;
          for (index_t f = 0; f < G; ++f) word |= group_field(r0[f * x.ld + q]) << (bits * f);
          o[p * S + q] = std::bit_cast<float>(word);
        }
      }
      p_done = whole;
    } else if (w == S) {
      for (index_t q = 0; q < S; ++q) {
        const T* row = x.row(s0 + t + q) + k0;
        for (index_t p = 0; p < whole; ++p) {
          std::uint32_t word;
          std::memcpy(&word, row + G * p, 4);
          o[p * S + q] = std::bit_cast<float>(word);
        }
      }
      p_done = whole;
    }
    for (index_t p = p_done; p < groups; ++p)
      for (index_t q = 0; q < S; ++q) {
        std::uint32_t word = 0;
        if (q < w)
          for (index_t f = 0; f < G; ++f) word |= at(s0 + t + q, G * p + f) << (bits * f);
        o[p * S + q] = std::bit_cast<float>(word);
      }
  }
}

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
        x = x + lane_load<V>(p);
      else if (beta != 0.0f)
        x = lane_fma(V(beta), lane_load<V>(p), x);
      lane_store(p, x);
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
    decltype(step_b_operand<Step>(V())) bv[NV];
    for (index_t v = 0; v < NV; ++v) bv[v] = step_b_operand<Step>(lane_load<V>(b + k * NR + v * W));
#pragma GCC unroll 16
    for (index_t r = 0; r < MR; ++r) {
      const auto av = step_a_operand<Step>(V(Direct ? a[r * lda + k] : a[k * MR + r]));
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

}  // namespace detail
}  // namespace tpp
