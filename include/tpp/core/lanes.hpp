#pragma once
// The one SIMD vocabulary of tpp's ops. Every op writes its math once, as a template over a lane type V:
//   V = xsimd::batch<float, A>  W = batch size lanes at xsimd arch A (simd::lane: the compile-time arch)
//   V = float                   one lane: the scalar loops of TPP_NO_SIMD builds and scalar references
// and calls these helpers, which have a float and a batch form each (xsimd where it has the operation,
// arch/ where it does not: ops never write ISA code). Data lanes are fp32; elements in memory are fp32 or
// bf16 (widened exactly; stored rounded to nearest even, a NaN kept a quiet NaN), uint8 masks (nonzero =
// true) and, for loads, 8/16/32-bit integers (converted exactly).
//
//   lane types      width<V>, mask_of<V>, i32_of<V>, u32_of<V>
//   loads, stores   load<V>(p), load<V>(p, n), store(p, v), store(p, v, n): W elements, or the first n <= W
//                   (a row's tail: lanes past n load as +0 and are never touched in memory; one masked
//                   instruction where the ISA has it, arch/tail.hpp); load_mask<V> / store_mask for uint8
//                   masks; opaque(v) keeps a load from being folded into the op using it (arch/registers);
//                   store_int(p, v[, n]): 32-bit integer lanes, each within the type's range, to 8/16/32-bit
//                   integers (arch/convert); store_high_halves(p, u[, n]): the upper 16 bits of 32-bit lanes
//                   to uint16 (bf16 by truncation)
//   masks           first_n<V>(n) (lanes [0, n) true), bits(m) (bit k = lane k), any(m), all(m), iota<V>()
//   horizontal      hsum(v) (a tree), hmax(v), hmin(v) (halving trees of a > b ? a : b: for lanes without
//                   NaN the max / min; see arch/horizontal.hpp for NaN)
//   select          select(c, a, b) on float and 32-bit integer lanes
//   max / min       max_propagating_nan(a, b), min_propagating_nan(a, b): NaN if either is NaN (a's if a
//                     is, else b's), b for equal operands (+0 and -0 included)
//                   max_second_on_nan(a, b), min_second_on_nan(a, b): a > b ? a : b (a < b ? a : b), so b
//                     where either is NaN (x86 maxps / minps, on every arch)
//   bit casts       as_f32, as_i32, as_u32
//   integers        min_int(a, b), max_int(a, b) on 32-bit integer lanes (signed or unsigned as the type)
//   classes         finite_else(q, v): q where v is finite, v itself where it is NaN or +-Inf (arch/classify)
//   arithmetic      neg (sign flip, NaN and zeros included), abs, fma (one rounding where the arch has
//                   an fma instruction, arch::fused_fma), div, sqrt (IEEE at
//                   every arch), exp, expm1, tanh, erfc, round_even, floor, copysign, to_i32 / to_f32
//                   (integer-valued lanes), is_nan, clamp, greater_equal (unsigned 32-bit lanes)

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../arch/classify.hpp"
#include "../arch/convert.hpp"
#include "../arch/horizontal.hpp"
#include "../arch/ieee.hpp"
#include "../arch/registers.hpp"
#include "../arch/tail.hpp"
#include "bf16.hpp"
#include "simd.hpp"
#include "types.hpp"

namespace tpp::lanes {

// ---- lane types ---------------------------------------------------------------------------------------

template <class V>
struct lane_traits {
  static_assert(dependent_false<V>, "tpp: a lane type is float or xsimd::batch<float, A>");
};
template <>
struct lane_traits<float> {
  static constexpr index_t width = 1;
  using mask = bool;
  using i32 = std::int32_t;
  using u32 = std::uint32_t;
};
template <class A>
struct lane_traits<xsimd::batch<float, A>> {
  static constexpr index_t width = index_t(xsimd::batch<float, A>::size);
  using mask = xsimd::batch_bool<float, A>;
  using i32 = xsimd::batch<std::int32_t, A>;
  using u32 = xsimd::batch<std::uint32_t, A>;
};

template <class V>
inline constexpr index_t width = lane_traits<V>::width;
template <class V>
using mask_of = typename lane_traits<V>::mask;
template <class V>
using i32_of = typename lane_traits<V>::i32;
template <class V>
using u32_of = typename lane_traits<V>::u32;

template <class V>
inline constexpr bool is_scalar = std::is_same_v<V, float>;

// ---- bit casts ----------------------------------------------------------------------------------------

inline float as_f32(float x) noexcept { return x; }
inline float as_f32(std::uint32_t u) noexcept { return std::bit_cast<float>(u); }
inline float as_f32(std::int32_t i) noexcept { return std::bit_cast<float>(i); }
inline std::uint32_t as_u32(float x) noexcept { return std::bit_cast<std::uint32_t>(x); }
inline std::uint32_t as_u32(std::int32_t i) noexcept { return std::uint32_t(i); }
inline std::int32_t as_i32(float x) noexcept { return std::bit_cast<std::int32_t>(x); }
inline std::int32_t as_i32(std::uint32_t u) noexcept { return std::int32_t(u); }
template <class T, class A>
xsimd::batch<float, A> as_f32(xsimd::batch<T, A> x) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<float, A>>(x);
}
template <class T, class A>
xsimd::batch<std::uint32_t, A> as_u32(xsimd::batch<T, A> x) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<std::uint32_t, A>>(x);
}
template <class T, class A>
xsimd::batch<std::int32_t, A> as_i32(xsimd::batch<T, A> x) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<std::int32_t, A>>(x);
}

// ---- select -------------------------------------------------------------------------------------------

template <class T>
  requires std::is_arithmetic_v<T>
T select(bool c, T a, T b) noexcept {
  return c ? a : b;
}
template <class A>
xsimd::batch<float, A> select(xsimd::batch_bool<float, A> c, xsimd::batch<float, A> a,
                              xsimd::batch<float, A> b) noexcept {
  return xsimd::select(c, a, b);
}
// On 32-bit integer lanes, by a float or an integer mask. xsimd 8.1's avx512bw integer select does not
// compile (its switch on sizeof(T) instantiates the 8- and 16-bit blends), so blend in the float domain:
// the same instruction class, and bit patterns pass through unchanged.
template <class T, class A>
  requires(sizeof(T) == 4 && std::is_integral_v<T>)
xsimd::batch<T, A> select(xsimd::batch_bool<float, A> c, xsimd::batch<T, A> a, xsimd::batch<T, A> b) noexcept {
  return xsimd::bitwise_cast<xsimd::batch<T, A>>(xsimd::select(c, as_f32(a), as_f32(b)));
}
template <class T, class A>
  requires(sizeof(T) == 4 && std::is_integral_v<T>)
xsimd::batch<T, A> select(xsimd::batch_bool<std::int32_t, A> c, xsimd::batch<T, A> a, xsimd::batch<T, A> b) noexcept {
  return lanes::select(xsimd::bool_cast(c), a, b);
}

// ---- masks --------------------------------------------------------------------------------------------

// Lanes [0, n) true, the others false; 0 <= n <= W.
template <class V>
mask_of<V> first_n(index_t n) noexcept {
  if constexpr (is_scalar<V>) {
    return n > 0;
  } else {
    alignas(64) static constexpr float iota[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                                   32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
                                                   48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
    static_assert(width<V> <= 64);
    return V::load_aligned(iota) < V(float(n));
  }
}

// Bit k = lane k.
inline std::uint64_t bits(bool m) noexcept { return m ? 1u : 0u; }
template <class A>
std::uint64_t bits(xsimd::batch_bool<float, A> m) noexcept {
  return arch::mask_bits<A>(m);
}

inline bool any(bool m) noexcept { return m; }
inline bool all(bool m) noexcept { return m; }
template <class T, class A>
bool any(xsimd::batch_bool<T, A> m) noexcept {
  return xsimd::any(m);
}
template <class T, class A>
bool all(xsimd::batch_bool<T, A> m) noexcept {
  return xsimd::all(m);
}

// The lane indices 0, 1, ..., W - 1 as unsigned 32-bit lanes.
template <class V>
u32_of<V> iota() noexcept {
  if constexpr (is_scalar<V>) {
    return 0;
  } else {
    alignas(64) std::uint32_t buf[width<V>];
    for (index_t k = 0; k < width<V>; ++k) buf[k] = std::uint32_t(k);
    return u32_of<V>::load_aligned(buf);
  }
}

// ---- loads and stores ---------------------------------------------------------------------------------

// W elements from p (fp32, bf16, or 8/16/32-bit integers converted exactly).
template <class V, class T>
V load(const T* p) noexcept {
  if constexpr (is_scalar<V>) {
    if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, float>)
      return to_float(*p);
    else
      return float(*p);
  } else {
    using A = typename V::arch_type;
    if constexpr (std::is_same_v<T, float>) {
      return V::load_unaligned(p);
    } else if constexpr (std::is_same_v<T, bf16>) {
      return arch::widen_bf16<A>(reinterpret_cast<const std::uint16_t*>(p));
    } else {
      static_assert(std::is_integral_v<T> && sizeof(T) <= 4, "tpp: lanes::load of float, bf16 or integers");
      if constexpr (arch::narrow_int<T>) {
        return xsimd::to_float(arch::widen_int<A>(p));
      } else {
        alignas(64) std::int32_t b[width<V>];
        for (index_t k = 0; k < width<V>; ++k) b[k] = std::int32_t(p[k]);
        return xsimd::to_float(xsimd::batch<std::int32_t, A>::load_aligned(b));
      }
    }
  }
}

// The first n elements (0 <= n <= W; n = W is a full load); lanes past n are +0 and p[n, W) is not read.
template <class V, class T>
V load(const T* p, index_t n) noexcept {
  if constexpr (is_scalar<V>) {
    return lanes::load<V>(p);
  } else {
    using A = typename V::arch_type;
    if (n == width<V>) return lanes::load<V>(p);
    if constexpr (std::is_same_v<T, float>) {
      return arch::load_first<A>(p, n);
    } else if constexpr (std::is_same_v<T, bf16>) {
      return arch::widen_bf16_first<A>(reinterpret_cast<const std::uint16_t*>(p), n);
    } else {
      alignas(64) std::int32_t b[width<V>] = {};
      for (index_t k = 0; k < n; ++k) b[k] = std::int32_t(p[k]);
      return xsimd::to_float(xsimd::batch<std::int32_t, A>::load_aligned(b));
    }
  }
}

namespace detail {
// bf16 bits of each lane rounded to nearest even (a NaN kept quiet) in the upper halves: lane for lane
// what to_bf16_rne does.
template <class A>
xsimd::batch<std::uint32_t, A> bf16_rne_high(xsimd::batch<float, A> v) noexcept {
  using i32 = xsimd::batch<std::int32_t, A>;
  const i32 u = as_i32(v);
  const i32 rounded = u + (i32(0x7fff) + ((u >> 16) & i32(1)));  // >> is arithmetic; & 1 drops the sign
  const i32 quiet = u | i32(0x00400000);
  const auto is_nan = (u & i32(0x7fffffff)) > i32(0x7f800000);
  return as_u32(lanes::select(is_nan, quiet, rounded));
}
}  // namespace detail

// W lanes to p (fp32, or bf16 rounded to nearest even).
template <class T, class V>
void store(T* p, V v) noexcept {
  if constexpr (is_scalar<V>) {
    *p = from_float<T>(v);
  } else {
    using A = typename V::arch_type;
    if constexpr (std::is_same_v<T, float>) {
      v.store_unaligned(p);
    } else {
      static_assert(std::is_same_v<T, bf16>, "tpp: lanes::store to float or bf16");
      arch::store_high_halves<A>(reinterpret_cast<std::uint16_t*>(p), detail::bf16_rne_high<A>(v));
    }
  }
}

// The first n lanes (0 <= n <= W); p[n, W) is not touched.
template <class T, class V>
void store(T* p, V v, index_t n) noexcept {
  if constexpr (is_scalar<V>) {
    lanes::store(p, v);
  } else {
    using A = typename V::arch_type;
    if (n == width<V>) return lanes::store(p, v);
    if constexpr (std::is_same_v<T, float>) {
      arch::store_first<A>(p, v, n);
    } else {
      static_assert(std::is_same_v<T, bf16>, "tpp: lanes::store to float or bf16");
      arch::store_high_halves_first<A>(reinterpret_cast<std::uint16_t*>(p), detail::bf16_rne_high<A>(v), n);
    }
  }
}

// 32-bit integer lanes, each within T's range, to W integers of T, or the first n.
template <class T>
  requires std::is_integral_v<T>
void store_int(T* p, std::int32_t v, index_t = 1) noexcept {
  *p = T(v);
}
template <class T, class A>
void store_int(T* p, xsimd::batch<std::int32_t, A> v) noexcept {
  static_assert(std::is_integral_v<T> && sizeof(T) <= 4, "tpp: lanes::store_int to 8/16/32-bit integers");
  if constexpr (sizeof(T) == 4)
    v.store_unaligned(reinterpret_cast<std::int32_t*>(p));
  else
    arch::store_narrowed<A>(p, v);
}
template <class T, class A>
void store_int(T* p, xsimd::batch<std::int32_t, A> v, index_t n) noexcept {
  constexpr index_t W = index_t(xsimd::batch<std::int32_t, A>::size);
  if (n == W) return lanes::store_int(p, v);
  alignas(64) std::int32_t b[W];
  v.store_aligned(b);
  for (index_t k = 0; k < n; ++k) p[k] = T(b[k]);
}

// The upper 16 bits of 32-bit lanes to W uint16, or the first n (bf16 by truncation: quiet a NaN first,
// or one whose payload lies in the lower half becomes an infinity).
inline void store_high_halves(std::uint16_t* p, std::uint32_t u, index_t = 1) noexcept { *p = std::uint16_t(u >> 16); }
template <class A>
void store_high_halves(std::uint16_t* p, xsimd::batch<std::uint32_t, A> u) noexcept {
  arch::store_high_halves<A>(p, u);
}
template <class A>
void store_high_halves(std::uint16_t* p, xsimd::batch<std::uint32_t, A> u, index_t n) noexcept {
  if (n == index_t(xsimd::batch<std::uint32_t, A>::size)) return arch::store_high_halves<A>(p, u);
  arch::store_high_halves_first<A>(p, u, n);
}

// uint8 masks (nonzero = true): W bytes, or the first n (the other lanes false). Fixed-count loops through
// a buffer: the compiler turns them into a widening load (vpmovzxbd) and a narrowing store (vpmovdb).
template <class V>
mask_of<V> load_mask(const std::uint8_t* p, index_t n = width<V>) noexcept {
  if constexpr (is_scalar<V>) {
    return *p != 0;
  } else {
    using I = xsimd::batch<std::int32_t, typename V::arch_type>;
    alignas(64) std::int32_t buf[width<V>] = {};
    if (n == width<V>)
      for (index_t k = 0; k < width<V>; ++k) buf[k] = p[k];
    else
      for (index_t k = 0; k < n; ++k) buf[k] = p[k];
    return xsimd::bool_cast(I::load_aligned(buf) > I(0));
  }
}

inline void store_mask(std::uint8_t* p, bool m, index_t = 1) noexcept { *p = std::uint8_t(m ? 1 : 0); }
template <class A>
void store_mask(std::uint8_t* p, xsimd::batch_bool<float, A> m, index_t n = index_t(xsimd::batch<float, A>::size)) noexcept {
  using I = xsimd::batch<std::int32_t, A>;
  constexpr index_t W = index_t(I::size);
  alignas(64) std::int32_t buf[W];
  lanes::select(m, I(1), I(0)).store_aligned(buf);
  if (n == W)
    for (index_t k = 0; k < W; ++k) p[k] = std::uint8_t(buf[k]);
  else
    for (index_t k = 0; k < n; ++k) p[k] = std::uint8_t(buf[k]);
}

// Keeps a loaded value in a register (arch/registers.hpp); a no-op for float.
inline void opaque(float&) noexcept {}
template <class A>
void opaque(xsimd::batch<float, A>& v) noexcept {
  arch::opaque<A>(v);
}

// ---- horizontal ---------------------------------------------------------------------------------------

inline float hsum(float v) noexcept { return v; }
template <class A>
float hsum(xsimd::batch<float, A> v) noexcept {
  return xsimd::hadd(v);
}
inline float hmax(float v) noexcept { return v; }
template <class A>
float hmax(xsimd::batch<float, A> v) noexcept {
  return arch::hmax<A>(v);
}
inline float hmin(float v) noexcept { return v; }
template <class A>
float hmin(xsimd::batch<float, A> v) noexcept {
  return arch::hmin<A>(v);
}

// ---- comparisons, max / min ---------------------------------------------------------------------------

// NaN lanes: xsimd::isnan, one unordered compare at x86 (!(x == x) at NEON). Not a != a: xsimd 8.1's != is
// the ordered compare at avx and avx512f (false for NaN).
inline bool is_nan(float x) noexcept { return std::isnan(x); }
template <class A>
xsimd::batch_bool<float, A> is_nan(xsimd::batch<float, A> x) noexcept {
  return xsimd::isnan(x);
}

// a > b ? a : b and a < b ? a : b: b where either is NaN (x86 maxps / minps, which xsimd calls on x86).
inline float max_second_on_nan(float a, float b) noexcept { return a > b ? a : b; }
inline float min_second_on_nan(float a, float b) noexcept { return a < b ? a : b; }
template <class A>
xsimd::batch<float, A> max_second_on_nan(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
  if constexpr (arch::x86<A>)
    return xsimd::max(a, b);
  else
    return xsimd::select(a > b, a, b);
}
template <class A>
xsimd::batch<float, A> min_second_on_nan(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
  if constexpr (arch::x86<A>)
    return xsimd::min(a, b);
  else
    return xsimd::select(a < b, a, b);
}

// NaN if either is NaN (a NaN a as it is, else b's NaN); b for equal operands (+0 and -0 included).
template <class V>
V max_propagating_nan(V a, V b) noexcept {
  return lanes::select(is_nan(a), a, lanes::select(a > b, a, b));
}
template <class V>
V min_propagating_nan(V a, V b) noexcept {
  return lanes::select(is_nan(a), a, lanes::select(a < b, a, b));
}

// x limited to [lo, hi]; NaN stays NaN.
template <class V>
V clamp(V x, float lo, float hi) noexcept {
  return lanes::select(x > V(hi), V(hi), lanes::select(x < V(lo), V(lo), x));
}

// Integer lanes: the smaller and the larger (signed or unsigned order, as the lane type).
template <class T>
  requires std::is_integral_v<T>
T min_int(T a, T b) noexcept {
  return std::min(a, b);
}
template <class T>
  requires std::is_integral_v<T>
T max_int(T a, T b) noexcept {
  return std::max(a, b);
}
template <class T, class A>
  requires(std::is_integral_v<T> && sizeof(T) == 4)
xsimd::batch<T, A> min_int(xsimd::batch<T, A> a, xsimd::batch<T, A> b) noexcept {
  return xsimd::min(a, b);
}
template <class T, class A>
  requires(std::is_integral_v<T> && sizeof(T) == 4)
xsimd::batch<T, A> max_int(xsimd::batch<T, A> a, xsimd::batch<T, A> b) noexcept {
  return xsimd::max(a, b);
}

// Unsigned a >= b on 32-bit lanes (as a signed compare with the sign bits flipped: AVX2 has no unsigned
// compare), as a float mask.
inline bool greater_equal(std::uint32_t a, std::uint32_t b) noexcept { return a >= b; }
template <class A>
xsimd::batch_bool<float, A> greater_equal(xsimd::batch<std::uint32_t, A> a, std::uint32_t b) noexcept {
  using I = xsimd::batch<std::int32_t, A>;
  const I flip(std::int32_t(0x80000000u));
  return xsimd::bool_cast((as_i32(a) ^ flip) >= (I(std::int32_t(b)) ^ flip));
}

// ---- arithmetic ---------------------------------------------------------------------------------------

// -x by flipping the sign bit (zeros and NaNs included). xsimd 8.1's unary minus is 0 - x at avx512f,
// which gives +0 for +0 and keeps a NaN's sign.
inline float neg(float x) noexcept { return -x; }
template <class A>
xsimd::batch<float, A> neg(xsimd::batch<float, A> x) noexcept {
  return x ^ xsimd::batch<float, A>(-0.0f);
}

// q where v is finite, v itself (its very bits) where v is NaN or +-Inf.
inline float finite_else(float q, float v) noexcept { return std::fabs(v) < std::numeric_limits<float>::infinity() ? q : v; }
template <class A>
xsimd::batch<float, A> finite_else(xsimd::batch<float, A> q, xsimd::batch<float, A> v) noexcept {
  return arch::finite_else<A>(q, v);
}

inline float fma(float a, float b, float c) noexcept { return std::fma(a, b, c); }
template <class A>
xsimd::batch<float, A> fma(xsimd::batch<float, A> a, xsimd::batch<float, A> b, xsimd::batch<float, A> c) noexcept {
  return arch::fma<A>(a, b, c);
}

inline float div(float a, float b) noexcept { return a / b; }
template <class A>
xsimd::batch<float, A> div(xsimd::batch<float, A> a, xsimd::batch<float, A> b) noexcept {
  return arch::div<A>(a, b);
}

inline float sqrt(float x) noexcept { return std::sqrt(x); }
template <class A>
xsimd::batch<float, A> sqrt(xsimd::batch<float, A> x) noexcept {
  return arch::sqrt<A>(x);
}

// abs, exp, expm1, tanh, floor, copysign: xsimd's, whose float forms are std::'s.
using xsimd::abs;
using xsimd::copysign;
using xsimd::exp;
using xsimd::expm1;
using xsimd::floor;
using xsimd::tanh;

// erfc, returning a NaN x itself: xsimd 8.1's erfc evaluates several branches and selects, so the NaN
// it gives back depends on how the compiler ordered them (AArch64 keeps the first NaN operand; two inlined
// copies, a row's SIMD body and its tail, gave NaNs of opposite signs).
inline float erfc(float x) noexcept { return lanes::is_nan(x) ? x : std::erfc(x); }
template <class A>
xsimd::batch<float, A> erfc(xsimd::batch<float, A> x) noexcept {
  return lanes::select(lanes::is_nan(x), x, xsimd::erfc(x));
}

// Round to the nearest integer, ties to even (the current rounding mode, nearest by default).
inline float round_even(float t) noexcept { return std::nearbyint(t); }
template <class A>
xsimd::batch<float, A> round_even(xsimd::batch<float, A> t) noexcept {
  return xsimd::nearbyint(t);
}

// Integer-valued lanes (|t| < 2^31) to int32, and int32 lanes to float.
inline std::int32_t to_i32(float t) noexcept { return std::int32_t(t); }
template <class A>
xsimd::batch<std::int32_t, A> to_i32(xsimd::batch<float, A> t) noexcept {
  return xsimd::to_int(t);
}
inline float to_f32(std::int32_t i) noexcept { return float(i); }
template <class A>
xsimd::batch<float, A> to_f32(xsimd::batch<std::int32_t, A> i) noexcept {
  return xsimd::to_float(i);
}

}  // namespace tpp::lanes
