#pragma once
// GEMM packing (ops/gemm.hpp is the interface): op(A) and op(B) copied into the slivers the micro-kernels
// read, fp32 (bf16 widened, transposes resolved, edges zero-padded), with a packed path's per-operand
// transform applied on the way and each panel's exponent range recorded; and the K-group form for the
// dot-product instructions (bf16 pairs, 8-bit quads), whose words live in the fp32 buffers as bit patterns.
// The buffers are regions of the call's scratch frame (core/workspace.hpp).

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../approx/gemm_traits.hpp"
#include "../../arch/vnni.hpp"
#include "../../core/bf16.hpp"
#include "../../core/lanes.hpp"
#include "../../core/mat.hpp"
#include "../../core/simd.hpp"
#include "../../core/workspace.hpp"

namespace tpp::detail {

// n elements of T from s: a region of a tpp::scratch frame, or, when s is a tpp::scratch_size, nullptr
// after counting the bytes (so workspace_bytes() and the call take the very same regions).
template <class T, class S>
T* take_region(S& s, std::size_t n) {
  if constexpr (std::is_same_v<S, scratch>) {
    return s.template take<T>(n);
  } else {
    s.template take<T>(n);
    return nullptr;
  }
}

// Packs S-wide slivers: for sliver indices [s0, s0 + sn) (rows i of op(A), or columns j of op(B)) and K
// [k0, k0 + kc), sliver t holds, for each k, S values, the ones past sn zero. The element for (s, k) is
// x(k, s) when k_major (the stored rows run along K: a transposed A, an untransposed B), else x(s, k).
// g: a packed path's per-operand transform (or identity); r: the panel's range, when recorded (real
// elements only, not the zero padding).
struct identity_pack {
  float operator()(float x) const noexcept { return x; }
};

// A k_major sliver without transform or range, a vector at a time (the widest copy of the packing: B's
// untransposed panels; at -O2 GCC leaves the scalar loop unvectorised).
template <index_t S, class T>
void gemm_pack_rows(const mat<const T>& x, index_t s0, index_t w, index_t k0, index_t kc, float* o) noexcept {
  using V = simd::lane;
  constexpr index_t W = lanes::width<V>;
  static_assert(S % W == 0);
  for (index_t k = 0; k < kc; ++k) {
    const T* src = x.row(k0 + k) + s0;
    float* ok = o + k * S;
    index_t q = 0;
    for (; q + W <= w; q += W) lanes::store(ok + q, lanes::load<V>(src + q));
    if (q < w) {
      lanes::store(ok + q, lanes::load<V>(src + q, w - q));  // lanes past w load as +0
      q += W;
    }
    for (; q < S; q += W) lanes::store(ok + q, V(0.0f));
  }
}

template <index_t S, class T, class G = identity_pack>
void gemm_pack(const mat<const T>& x, bool k_major, index_t s0, index_t sn, index_t k0, index_t kc, float* out,
               G g = {}, approx::panel_range* r = nullptr) noexcept {
  for (index_t t = 0; t < sn; t += S) {
    const index_t w = std::min(S, sn - t);
    float* o = out + t * kc;
    if constexpr (std::is_same_v<G, identity_pack> && S % lanes::width<simd::lane> == 0)
      if (k_major && r == nullptr) {
        gemm_pack_rows<S>(x, s0 + t, w, k0, kc, o);
        continue;
      }
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
                 G g = {}, approx::panel_range* r = nullptr) noexcept {
  gemm_pack<MR>(a, trans, i0, mc, p0, kc, out, g, r);
}

// op(B) K [p0, p0 + kc) x columns [j0, j0 + nc) as NR-column slivers.
template <index_t NR, class T, class G = identity_pack>
void gemm_pack_b(const mat<const T>& b, bool trans, index_t p0, index_t kc, index_t j0, index_t nc, float* out,
                 G g = {}, approx::panel_range* r = nullptr) noexcept {
  gemm_pack<NR>(b, !trans, j0, nc, p0, kc, out, g, r);
}

// The K-group form of gemm_pack for the dot-product instructions: G consecutive k of one element share a
// 32-bit word, in fields of 32 / G bits, the earlier k in the lower field (G = 2: bf16 pairs for
// vdpbf16ps; G = 4: 8-bit quads for vpdpbusd). Sliver t holds, for each group p < ceil(kc / G), S words,
// word q = {x(s, k0 + G p + f)} for s = s0 + t + q (words past sn zero, zero fields past kc); the words
// are stored in the fp32 buffer as bit patterns. Full slivers and whole groups take vector loops
// (k_major: G stored rows interleaved by arch::vnni_pack; otherwise a group is one 32-bit load); edge
// slivers and a last partial group go element by element.
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
    if (w == S && k_major) {  // G stored rows interleaved: arch/vnni.hpp's row-group pack, a vector a step
      using U = arch::vnni_word<int(G)>;
      for (index_t p = 0; p < whole; ++p) {
        const T* r0 = x.row(k0 + G * p) + s0 + t;
        const U* rows[G];
        for (index_t f = 0; f < G; ++f) rows[f] = reinterpret_cast<const U*>(r0 + f * x.ld);
        U* words = reinterpret_cast<U*>(o + p * S);
        if constexpr (simd::enabled)
          arch::vnni_pack<int(G), simd::default_arch>(rows, words, S);
        else
          arch::vnni_pack_scalar<int(G)>(rows, words, S);
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

}  // namespace tpp::detail
