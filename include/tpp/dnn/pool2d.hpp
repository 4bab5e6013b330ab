#pragma once
// dnn::pool2d: 2D max and average pooling over NHWC activations, forward and backward, the average's
// scaling multiply through the policy (DESIGN.md 3b and 7).
//
// Layouts (views): x, dx (N*H*W, C), one row per input pixel; y, dy (N*P*Q, C); argmax (N*P*Q, C) int32,
// the tap r*S + s of each output's winning input (max pooling). P and Q as conv2d's with dilation 1:
// (h + 2 pad_h - r) / stride_h + 1, likewise for w. Padding is never a value: a window reduces over the
// taps inside the image (every window has one: pad < window), and an average divides by their count, or by
// r*s with avg_count_pad (oneDNN's avg_exclude_padding / avg_include_padding).
//
//   forward, max   y = the first maximum of the window's taps in scan order (r, then s); a NaN tap wins
//                  (the first NaN: y is NaN and argmax names it). argmax, when given, gets its tap index.
//   forward, avg   y = P(sum of the taps in fp32, 1/count)
//   backward, max  dx(pixel) = sum of dy over the windows whose argmax names that pixel (an index naming
//                  no tap of its window adds nothing); needs the forward's argmax
//   backward, avg  dx(pixel) = sum over the windows that hold it of P(dy, 1/count)
// dx is overwritten. Vector loops over the channels (up to four vectors at once, a masked tail), parallel
// over (image, output row) forward and over (image, input row) backward: the backward gathers each dx
// element from the windows that hold it, so no two threads write one element, and the sums run in a fixed
// order (deterministic, for any thread count). A global pooling (P = Q = 1) also splits the channels.
// OpenMP inside; called from inside a parallel region it runs on the calling thread.

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/lanes.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/simd.hpp"

namespace tpp::dnn {

enum class pool_kind { max, avg };

struct pool2d_shape {
  index_t n = 0, h = 0, w = 0, c = 0;  // input: batch, height, width, channels
  index_t r = 1, s = 1;                // window height and width
  index_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  pool_kind kind = pool_kind::max;
  bool avg_count_pad = false;  // average: divide by r*s (padding counted) instead of the taps inside

  // Output height (h + 2 pad_h - r) / stride_h + 1, and width likewise (0 when the window does not fit).
  index_t p() const noexcept { return out_size(h, pad_h, r, stride_h); }
  index_t q() const noexcept { return out_size(w, pad_w, s, stride_w); }

  // Global average pooling: one output pixel per image, the mean of its h*w pixels.
  static pool2d_shape global_avg(index_t n, index_t h, index_t w, index_t c) noexcept {
    pool2d_shape g;
    g.n = n, g.h = h, g.w = w, g.c = c, g.r = h, g.s = w, g.kind = pool_kind::avg;
    return g;
  }

 private:
  static index_t out_size(index_t in, index_t pad, index_t taps, index_t stride) noexcept {
    const index_t span = in + 2 * pad - taps;
    return span < 0 || stride < 1 ? 0 : span / stride + 1;
  }
};

namespace detail {

// Every field in range, and every size pool2d forms fits index_t (tap indices: int32).
inline void check_pool2d_shape(std::string_view op, const pool2d_shape& s) {
  using tpp::detail::concat;
  using field = std::pair<std::string_view, index_t>;
  for (const field& f : {field{"n", s.n}, field{"h", s.h}, field{"w", s.w}, field{"c", s.c}, field{"r", s.r},
                         field{"s", s.s}, field{"stride_h", s.stride_h}, field{"stride_w", s.stride_w}})
    if (f.second < 1) throw error(op, f.first, concat("(", std::to_string(f.second), ") must be at least 1"));
  if (s.kind != pool_kind::max && s.kind != pool_kind::avg) throw error(op, "kind", "is neither max nor avg");
  const index_t big = std::numeric_limits<index_t>::max() / 4;
  for (const field& f : {field{"pad_h", s.pad_h}, field{"pad_w", s.pad_w}}) {
    if (f.second < 0) throw error(op, f.first, concat("(", std::to_string(f.second), ") is negative"));
    if (f.second > big) throw error(op, f.first, "overflows index_t in the padded extent");
  }
  for (const field& f : {field{"h", s.h}, field{"w", s.w}, field{"r", s.r}, field{"s", s.s}})
    if (f.second > big) throw error(op, f.first, "overflows index_t in the padded extent");
  if (s.pad_h >= s.r)
    throw error(op, "pad_h", concat("(", std::to_string(s.pad_h), ") is not below the window height r (",
                                    std::to_string(s.r), "): some outputs would see only padding"));
  if (s.pad_w >= s.s)
    throw error(op, "pad_w", concat("(", std::to_string(s.pad_w), ") is not below the window width s (",
                                    std::to_string(s.s), "): some outputs would see only padding"));
  if (s.p() < 1)
    throw error(op, "h", concat("(", std::to_string(s.h), ") with this padding is smaller than the window (",
                                std::to_string(s.r), "): no output rows"));
  if (s.q() < 1)
    throw error(op, "w", concat("(", std::to_string(s.w), ") with this padding is smaller than the window (",
                                std::to_string(s.s), "): no output columns"));
  const auto fits = [&](std::initializer_list<index_t> f, index_t limit) {
    index_t acc = 1;
    for (index_t v : f)
      if (!tpp::detail::checked_mul(acc, v, acc) || acc > limit) return false;
    return true;
  };
  if (!fits({s.n, s.h, s.w, s.c}, big)) throw error(op, "n", "n * h * w * c overflows index_t");
  if (!fits({s.n, s.p(), s.q(), s.c}, big)) throw error(op, "n", "n * p * q * c overflows index_t");
  if (!fits({s.r, s.s}, std::numeric_limits<std::int32_t>::max()))
    throw error(op, "r", "r * s does not fit the int32 tap indices of argmax");
}

}  // namespace detail

template <class Policy = approx::exact, class T = float>
  requires approx::multiplier<Policy> && (std::same_as<T, float> || std::same_as<T, bf16>)
class pool2d {
 public:
  static constexpr std::string_view label = "pool2d";

  explicit pool2d(pool2d_shape shape) : s_(shape) {
    detail::check_pool2d_shape(label, s_);
    approx::check_policy<Policy>();
    P_ = s_.p();
    Q_ = s_.q();
  }

  const pool2d_shape& shape() const noexcept { return s_; }

  // y (N*P*Q, C) = the pooling of x (N*H*W, C). Max pooling writes each output's winning tap r*S + s to
  // argmax (N*P*Q, C) when it is given (training); average pooling takes none.
  void forward(mat<const T> x, mat<T> y, mat<std::int32_t> argmax = {}) const {
    constexpr std::string_view op = "pool2d::forward";
    const bool track = !argmax.empty();
    tpp::detail::check_view(x, s_.n * s_.h * s_.w, s_.c, op, "x", "(n*h*w, c)");
    tpp::detail::check_view(y, s_.n * P_ * Q_, s_.c, op, "y", "(n*p*q, c)");
    if (track) {
      if (s_.kind != pool_kind::max) throw error(op, "argmax", "is only written by max pooling");
      tpp::detail::check_view(argmax, s_.n * P_ * Q_, s_.c, op, "argmax", "(n*p*q, c)");
      if (tpp::detail::views_overlap(argmax, x)) throw error(op, "x", "overlaps argmax");
      if (tpp::detail::views_overlap(argmax, y)) throw error(op, "argmax", "overlaps y");
    }
    if (tpp::detail::views_overlap(y, x)) throw error(op, "x", "overlaps y");
    // Global pooling has one output row per image: split the channels too, so every thread has work.
    const index_t rows = s_.n * P_, parts = rows >= 4 * max_threads() ? 1 : (s_.c + block - 1) / block;
    parallel_for(rows * parts, [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        const index_t np = i / parts, part = i % parts;
        const index_t j0 = parts == 1 ? 0 : part * block, j1 = parts == 1 ? s_.c : std::min(s_.c, j0 + block);
        if (s_.kind == pool_kind::avg)
          forward_row<pool_kind::avg, false>(x, y, argmax, np, j0, j1);
        else if (track)
          forward_row<pool_kind::max, true>(x, y, argmax, np, j0, j1);
        else
          forward_row<pool_kind::max, false>(x, y, argmax, np, j0, j1);
      }
    });
  }

  // dx (N*H*W, C) = the gradient of x for dy (N*P*Q, C); overwritten. Max pooling needs the forward's
  // argmax; average pooling takes none.
  void backward(mat<const T> dy, mat<T> dx, mat<const std::int32_t> argmax = {}) const {
    constexpr std::string_view op = "pool2d::backward";
    tpp::detail::check_view(dy, s_.n * P_ * Q_, s_.c, op, "dy", "(n*p*q, c)");
    tpp::detail::check_view(dx, s_.n * s_.h * s_.w, s_.c, op, "dx", "(n*h*w, c)");
    if (s_.kind == pool_kind::max) {
      if (argmax.empty()) throw error(op, "argmax", "is empty: max pooling's backward needs the forward's argmax");
      tpp::detail::check_view(argmax, s_.n * P_ * Q_, s_.c, op, "argmax", "(n*p*q, c)");
      if (tpp::detail::views_overlap(dx, argmax)) throw error(op, "argmax", "overlaps dx");
    } else if (!argmax.empty()) {
      throw error(op, "argmax", "is only taken by max pooling");
    }
    if (tpp::detail::views_overlap(dx, dy)) throw error(op, "dy", "overlaps dx");
    parallel_for(s_.n * s_.h, [&](index_t b, index_t e) {
      for (index_t nh = b; nh < e; ++nh)
        if (s_.kind == pool_kind::avg)
          backward_row<pool_kind::avg>(dy, dx, argmax, nh);
        else
          backward_row<pool_kind::max>(dy, dx, argmax, nh);
    });
  }

 private:
  using V = simd::lane;
  using I = lanes::i32_of<V>;
  static constexpr index_t W = lanes::width<V>;
  static constexpr int U = 4;                 // vectors a window loop carries at once
  static constexpr index_t block = U * W;     // channels per part of a global pooling

  template <class U_>
  static V ld(const U_* p, index_t n) noexcept {
    return n == W ? lanes::load<V>(p) : lanes::load<V>(p, n);
  }
  // n int32 tap indices from p (lanes past n: 0).
  template <class VV = V>
  static lanes::i32_of<VV> load_index(const std::int32_t* p, index_t n) noexcept {
    using J = lanes::i32_of<VV>;
    if constexpr (lanes::is_scalar<VV>) {
      return *p;
    } else {
      if (n == W) return J::load_unaligned(p);
      alignas(64) std::int32_t b[W] = {};
      for (index_t k = 0; k < n; ++k) b[k] = p[k];
      return J::load_aligned(b);
    }
  }
  template <class VV = V>
  static lanes::mask_of<VV> is_tap(lanes::i32_of<VV> a, std::int32_t t) noexcept {
    if constexpr (lanes::is_scalar<VV>)
      return a == t;
    else
      return xsimd::bool_cast(a == lanes::i32_of<VV>(t));
  }
  // Whether v replaces the running maximum m: v above it, or v NaN and m not (the first NaN stays).
  template <class VV = V>
  static lanes::mask_of<VV> takes(VV v, VV m) noexcept {
    if constexpr (lanes::is_scalar<VV>)
      return v > m || (lanes::is_nan(v) && m == m);
    else
      return (v > m) | (lanes::is_nan(v) & (m == m));
  }
  // acc + P(a, b); exact's fuses into an FMA.
  static V mul_add(V a, V b, V acc) noexcept {
    if constexpr (std::is_same_v<Policy, approx::exact>)
      return lanes::fma(a, b, acc);
    else
      return acc + Policy::mul(a, b);
  }

  // The taps [lo, hi) of output position t along one axis, clipped to the image.
  struct span {
    index_t lo, hi, first;  // first: the tap index of lo within the window
  };
  static span window(index_t t, index_t stride, index_t pad, index_t taps, index_t in) noexcept {
    const index_t start = t * stride - pad;
    const index_t lo = std::max<index_t>(0, start), hi = std::min(in, start + taps);
    return {lo, hi, lo - start};
  }
  // The output positions [lo, hi) whose windows hold input position i along one axis.
  static std::pair<index_t, index_t> covering(index_t i, index_t stride, index_t pad, index_t taps, index_t out) noexcept {
    const index_t a = i + pad - taps + 1;  // t * stride >= a
    const index_t lo = std::max<index_t>(0, a <= 0 ? 0 : (a + stride - 1) / stride);
    const index_t hi = std::min(out, (i + pad) / stride + 1);
    return {lo, hi};
  }

  // One output row np, channels [j0, j1).
  template <pool_kind K, bool Track>
  void forward_row(mat<const T> x, mat<T> y, mat<std::int32_t> am, index_t np, index_t j0, index_t j1) const {
    const pool2d_shape& s = s_;
    const index_t n = np / P_, p = np % P_;
    const span rh = window(p, s.stride_h, s.pad_h, s.r, s.h);
    const float inv_all = 1.0f / float(s.r * s.s);
    for (index_t q = 0; q < Q_; ++q) {
      const span rw = window(q, s.stride_w, s.pad_w, s.s, s.w);
      const float inv = s.avg_count_pad ? inv_all : 1.0f / float((rh.hi - rh.lo) * (rw.hi - rw.lo));
      const index_t o = np * Q_ + q;
      const T* base = x.row((n * s.h + rh.lo) * s.w + rw.lo);
      const std::int32_t tap0 = std::int32_t(rh.first * s.s + rw.first);
      // channels [j, j + nv W), the last vector len wide
      const auto run = [&]<int NV>(index_t j, index_t len) {
        V acc[NV];
        I idx[NV];
        for (int u = 0; u < NV; ++u) {
          acc[u] = V(K == pool_kind::max ? -std::numeric_limits<float>::infinity() : 0.0f);
          if constexpr (Track) idx[u] = I(tap0);
        }
        const T* row = base;
        std::int32_t tap_row = tap0;
        for (index_t ih = rh.lo; ih < rh.hi; ++ih, row += s.w * x.ld, tap_row += std::int32_t(s.s)) {
          const T* px = row + j;
          std::int32_t tap = tap_row;
          for (index_t iw = rw.lo; iw < rw.hi; ++iw, px += x.ld, ++tap)
            for (int u = 0; u < NV; ++u) {
              const V v = ld(px + u * W, u == NV - 1 ? len : W);
              if constexpr (K == pool_kind::avg) {
                acc[u] += v;
              } else {
                const auto t = takes(v, acc[u]);
                acc[u] = lanes::select(t, v, acc[u]);
                if constexpr (Track) idx[u] = lanes::select(t, I(tap), idx[u]);
              }
            }
        }
        for (int u = 0; u < NV; ++u) {
          const index_t m = u == NV - 1 ? len : W;
          V out = acc[u];
          if constexpr (K == pool_kind::avg) out = Policy::mul(out, V(inv));
          lanes::store(y.row(o) + j + u * W, out, m);
          if constexpr (Track) lanes::store_int(am.row(o) + j + u * W, idx[u], m);
        }
      };
      index_t j = j0;
      for (; j + block <= j1; j += block) run.template operator()<U>(j, W);
      for (; j < j1; j += W) run.template operator()<1>(j, std::min(W, j1 - j));
    }
  }

  // One input row nh = (n, ih): each dx element gathered from the windows that hold it.
  template <pool_kind K>
  void backward_row(mat<const T> dy, mat<T> dx, mat<const std::int32_t> am, index_t nh) const {
    const pool2d_shape& s = s_;
    const index_t n = nh / s.h, ih = nh % s.h;
    const auto [p_lo, p_hi] = covering(ih, s.stride_h, s.pad_h, s.r, P_);
    const float inv_all = 1.0f / float(s.r * s.s);
    for (index_t iw = 0; iw < s.w; ++iw) {
      const auto [q_lo, q_hi] = covering(iw, s.stride_w, s.pad_w, s.s, Q_);
      T* out = dx.row(nh * s.w + iw);
      const auto run = [&]<int NV>(index_t j, index_t len) {
        V acc[NV];
        for (int u = 0; u < NV; ++u) acc[u] = V(0.0f);
        for (index_t p = p_lo; p < p_hi; ++p) {
          const span rh = window(p, s.stride_h, s.pad_h, s.r, s.h);
          const index_t r = ih - (p * s.stride_h - s.pad_h);
          for (index_t q = q_lo; q < q_hi; ++q) {
            const index_t o = (n * P_ + p) * Q_ + q;
            const T* g = dy.row(o) + j;
            if constexpr (K == pool_kind::avg) {
              const span rw = window(q, s.stride_w, s.pad_w, s.s, s.w);
              const V inv(s.avg_count_pad ? inv_all : 1.0f / float((rh.hi - rh.lo) * (rw.hi - rw.lo)));
              for (int u = 0; u < NV; ++u) acc[u] = mul_add(ld(g + u * W, u == NV - 1 ? len : W), inv, acc[u]);
            } else {
              const std::int32_t tap = std::int32_t(r * s.s + iw - (q * s.stride_w - s.pad_w));
              const std::int32_t* a = am.row(o) + j;
              for (int u = 0; u < NV; ++u) {
                const index_t m = u == NV - 1 ? len : W;
                acc[u] += lanes::select(is_tap(load_index(a + u * W, m), tap), ld(g + u * W, m), V(0.0f));
              }
            }
          }
        }
        for (int u = 0; u < NV; ++u) lanes::store(out + j + u * W, acc[u], u == NV - 1 ? len : W);
      };
      index_t j = 0;
      for (; j + block <= s.c; j += block) run.template operator()<U>(j, W);
      for (; j < s.c; j += W) run.template operator()<1>(j, std::min(W, s.c - j));
    }
  }

  pool2d_shape s_;
  index_t P_ = 0, Q_ = 0;
};

}  // namespace tpp::dnn
