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
// dx is overwritten. +0 and -0 are equal maxima (the first stays); an Inf is a value like any other.
//
// Decomposition: vector loops over the channels (up to four vectors at once, a masked tail) over a table of
// the window's tap offsets, rebuilt only where the window is clipped; with one vector of channels or fewer
// (LeNet's 6 or 16) four output pixels at once. A max without argmax runs a plain max and notes NaNs
// apart; a block that met one is redone by the tracking loop, so both forms give the same bits. A global
// average (one output pixel) sums whole runs of channels pixel by pixel (contiguous reads), per image and
// run. Parallel over (image, output row) forward and over (image, input row) backward: the backward
// gathers each dx element from the windows that hold it (windows that do not overlap, with one vector of
// channels or fewer: each window's dy written to its pixels), so no two threads write one element and its
// sum runs in a fixed order (deterministic, for any thread count). OpenMP inside; called from inside a
// parallel region it runs on the calling thread.

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../arch/tail.hpp"
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
    // Per axis: each output's clipped window, each input's covering outputs; per output pixel 1 / count.
    for (index_t p = 0; p < P_; ++p) rows_.push_back(window(p, s_.stride_h, s_.pad_h, s_.r, s_.h));
    for (index_t q = 0; q < Q_; ++q) cols_.push_back(window(q, s_.stride_w, s_.pad_w, s_.s, s_.w));
    for (index_t i = 0; i < s_.h; ++i) row_cover_.push_back(covering(i, s_.stride_h, s_.pad_h, s_.r, P_));
    for (index_t i = 0; i < s_.w; ++i) col_cover_.push_back(covering(i, s_.stride_w, s_.pad_w, s_.s, Q_));
    disjoint_ = s_.stride_h >= s_.r && s_.stride_w >= s_.s && s_.c <= W;  // (measured: a gain for few channels only)
    in_ = {Q_, Q_};  // the output columns whose windows lie inside the image: a run
    for (index_t q = 0; q < Q_; ++q)
      if (cols_[std::size_t(q)].size() == s_.s) in_ = {std::min(in_.lo, q), q + 1};
    if (s_.kind == pool_kind::avg) {
      inv_.resize(std::size_t(P_ * Q_));
      for (index_t p = 0; p < P_; ++p)
        for (index_t q = 0; q < Q_; ++q)
          inv_[std::size_t(p * Q_ + q)] =
              1.0f / float(s_.avg_count_pad ? s_.r * s_.s : rows_[std::size_t(p)].size() * cols_[std::size_t(q)].size());
    }
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
    if (s_.kind == pool_kind::avg && P_ == 1 && Q_ == 1) {  // global: per image and run of channels
      const index_t chunks = (s_.c + global_chunk - 1) / global_chunk;
      parallel_for(s_.n * chunks, [&](index_t b, index_t e) {
        for (index_t i = b; i < e; ++i) {
          const index_t j0 = (i % chunks) * global_chunk;
          global_avg_chunk(x, y, i / chunks, j0, std::min(s_.c, j0 + global_chunk));
        }
      });
      return;
    }
    // Few output rows (a global max pooling): split the channels too, so every thread has work.
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
          disjoint_ ? backward_disjoint<pool_kind::avg>(dy, dx, argmax, nh) : backward_row<pool_kind::avg>(dy, dx, argmax, nh);
        else
          disjoint_ ? backward_disjoint<pool_kind::max>(dy, dx, argmax, nh) : backward_row<pool_kind::max>(dy, dx, argmax, nh);
    });
  }

 private:
  using V = simd::lane;
  using I = lanes::i32_of<V>;
  static constexpr index_t W = lanes::width<V>;
  static constexpr int U = 4;                 // vectors a window loop carries at once
  static constexpr index_t block = U * W;     // channels per part of a global pooling

  // Where the float lanes' masked tail loads and stores are single instructions (arch/tail.hpp), int32
  // lanes move through them as bits.
  template <class VV>
  static constexpr bool masked_moves = [] {
    if constexpr (lanes::is_scalar<VV>)
      return false;
    else
      return std::is_base_of_v<xsimd::avx2, typename VV::arch_type> || std::is_base_of_v<xsimd::avx512f, typename VV::arch_type>;
  }();
  // n int32 tap indices from p (lanes past n: 0), and the first n lanes of v to p.
  template <class VV = V>
  static lanes::i32_of<VV> load_index(const std::int32_t* p, index_t n) noexcept {
    using J = lanes::i32_of<VV>;
    if constexpr (lanes::is_scalar<VV>) {
      return *p;
    } else {
      if (n == W) return J::load_unaligned(p);
      if constexpr (masked_moves<VV>) return lanes::as_i32(lanes::load<VV>(reinterpret_cast<const float*>(p), n));
      alignas(64) std::int32_t b[W] = {};
      for (index_t k = 0; k < n; ++k) b[k] = p[k];
      return J::load_aligned(b);
    }
  }
  template <class J>
  static void store_index(std::int32_t* p, J v, index_t n) noexcept {
    if constexpr (masked_moves<V>)
      lanes::store(reinterpret_cast<float*>(p), lanes::as_f32(v), n);
    else
      lanes::store_int(p, v, n);
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

  // The taps [lo, hi) of output position t along one axis, clipped to the image; start: the window's
  // first position (lo - start is lo's tap index within the window).
  struct span {
    index_t lo, hi, start;
    index_t size() const noexcept { return hi - lo; }
  };
  static span window(index_t t, index_t stride, index_t pad, index_t taps, index_t in) noexcept {
    const index_t start = t * stride - pad;
    return {std::max<index_t>(0, start), std::min(in, start + taps), start};
  }
  // The output positions [lo, hi) whose windows hold input position i along one axis.
  struct cover {
    index_t lo, hi;
  };
  static cover covering(index_t i, index_t stride, index_t pad, index_t taps, index_t out) noexcept {
    const index_t a = i + pad - taps + 1;  // t * stride >= a
    return {a <= 0 ? 0 : (a + stride - 1) / stride, std::min(out, (i + pad) / stride + 1)};
  }

  // f(0), ..., f(N - 1), unrolled (so a kernel's per-vector accumulators stay in registers).
  template <int N, class F>
  static void unroll(F&& f) {
    [&]<int... u>(std::integer_sequence<int, u...>) { (f(std::integral_constant<int, u>{}), ...); }(std::make_integer_sequence<int, N>{});
  }
  // Vector u of a kernel's channels from p: full (Full), or the first len <= W elements, one masked load
  // without lanes::load's test for a full vector (a branch in a tap loop keeps its accumulators in memory).
  template <bool Full, class E, class VV = V>
  static VV ld(const E* p, int u, index_t len) noexcept {
    if constexpr (Full || lanes::is_scalar<VV>) {
      return lanes::load<VV>(p + u * W);
    } else {
      using A = typename VV::arch_type;
      if constexpr (std::is_same_v<E, float>)
        return arch::load_first<A>(p, len);
      else
        return arch::widen_bf16_first<A>(reinterpret_cast<const std::uint16_t*>(p), len);
    }
  }
  template <bool Full, class E>
  static void st_store(E* p, int u, V v, index_t len) noexcept {
    if constexpr (Full)
      lanes::store(p + u * W, v);
    else
      lanes::store(p, v, len);
  }

  // A block of outputs over the window's taps inside the image (tap t at base + off[t], tap index tix[t], in
  // scan order): NV full channel vectors of one pixel (Full), one vector of len channels (NV = 1), or
  // (Pixels) NV pixels' first len channels, pixel u's window at base + u * st.x and its outputs at
  // y + u * st.y, argmax + u * st.a. Max modes: no_arg (plain max), with_arg (v > m picks the first
  // maximum), nan_rule (takes(): a NaN wins). The first two note NaNs apart (in a sum of the taps) and
  // return false, writing nothing, when they met one: the caller then runs nan_rule (rare).
  struct steps {
    index_t x = 0, y = 0, a = 0;
  };
  enum mode { no_arg, with_arg, nan_rule };
  template <pool_kind K, mode M, int NV, bool Full, bool Pixels = false>
  [[gnu::always_inline]] bool pixel(const T* base, const index_t* off, const std::int32_t* tix, index_t taps, float inv,
                                    T* yo, std::int32_t* ao, index_t len, steps st = {}) const {
    constexpr bool track = K == pool_kind::max && M != no_arg, note_nan = K == pool_kind::max && M != nan_rule;
    V acc[NV];
    I idx[NV];
    V sum[NV];  // the taps' sum: NaN if one is (or, rarely, if +Inf meets -Inf: then the NaN rule runs too)
    unroll<NV>([&](auto u) {
      acc[u] = V(K == pool_kind::max ? -std::numeric_limits<float>::infinity() : 0.0f);
      if constexpr (track) idx[u] = I(tix[0]);
      sum[u] = V(0.0f);
    });
    for (index_t t = 0; t < taps; ++t) {
      const T* px = base + off[t];
      unroll<NV>([&](auto u) {
        const V v = Pixels ? ld<Full>(px + u * st.x, 0, len) : ld<Full>(px, u, len);
        if constexpr (K == pool_kind::avg) {
          acc[u] += v;
        } else if constexpr (M == no_arg) {  // v > m ? v : m skips a NaN v (the first of equal maxima stays)
          acc[u] = lanes::max_second_on_nan(v, acc[u]);
        } else {
          const auto take = M == nan_rule ? takes(v, acc[u]) : v > acc[u];
          acc[u] = lanes::select(take, v, acc[u]);
          idx[u] = lanes::select(take, I(tix[t]), idx[u]);
        }
        if constexpr (note_nan) sum[u] += v;
      });
    }
    if constexpr (note_nan) {
      bool any = false;
      unroll<NV>([&](auto u) { any = any || lanes::any(lanes::is_nan(sum[u])); });
      if (any) return false;
    }
    unroll<NV>([&](auto u) {
      if constexpr (K == pool_kind::avg) acc[u] = Policy::mul(acc[u], V(inv));
      if constexpr (Pixels)
        st_store<Full>(yo + u * st.y, 0, acc[u], len);
      else
        st_store<Full>(yo, u, acc[u], len);
      if (track && ao != nullptr) {
        std::int32_t* const a = Pixels ? ao + u * st.a : ao + (Full ? u * W : 0);
        if constexpr (Full)
          lanes::store_int(a, idx[u]);
        else
          store_index(a, idx[u], len);
      }
    });
    return true;
  }

  // A max block with a NaN among its taps, out of line: the NaN rule's value (and argmax, if ao).
  template <int NV, bool Full, bool Pixels>
  [[gnu::noinline]] void first_nan(const T* base, const index_t* off, const std::int32_t* tix, index_t taps, T* yo,
                                   std::int32_t* ao, index_t len, steps st = {}) const {
    pixel<pool_kind::max, nan_rule, NV, Full, Pixels>(base, off, tix, taps, 0.0f, yo, ao, len, st);
  }

  // Windows of up to this many taps keep their offset table on the stack.
  static constexpr index_t stack_taps = 64;
  static constexpr int pixel_group = 4;

  // One output row np, channels [j0, j1).
  template <pool_kind K, bool Track>
  void forward_row(mat<const T> x, mat<T> y, mat<std::int32_t> am, index_t np, index_t j0, index_t j1) const {
    const index_t n = np / P_, p = np % P_, S = s_.s, ldx = x.ld;
    const span rh = rows_[std::size_t(p)];
    const T* const img = x.row(n * s_.h * s_.w);
    // The offsets and tap indices of the current window's taps inside the image, rebuilt when the
    // window's clipped columns change (at the borders).
    index_t off_stack[stack_taps];
    std::int32_t tix_stack[stack_taps];
    std::vector<index_t> off_heap;
    std::vector<std::int32_t> tix_heap;
    index_t* off = off_stack;
    std::int32_t* tix = tix_stack;
    if (s_.r * S > stack_taps) {
      off_heap.resize(std::size_t(s_.r * S));
      tix_heap.resize(std::size_t(s_.r * S));
      off = off_heap.data(), tix = tix_heap.data();
    }
    index_t taps = 0, built_lo = -1, built_hi = -1;
    // Few channels (one vector): the inside windows of the row four pixels at a time.
    const bool by_pixels = j1 - j0 <= W && in_.hi - in_.lo >= pixel_group;
    for (index_t q = 0; q < Q_; ++q) {
      if (by_pixels && q == in_.lo) {
        const span rw = cols_[std::size_t(q)];
        built_lo = 0, built_hi = S, taps = 0;
        for (index_t ih = rh.lo; ih < rh.hi; ++ih)
          for (index_t iw = 0; iw < S; ++iw, ++taps) {
            off[taps] = ((ih - rh.lo) * s_.w + iw) * ldx;
            tix[taps] = std::int32_t((ih - rh.start) * S + iw);
          }
        const float inv = K == pool_kind::avg ? inv_[std::size_t(p * Q_ + q)] : 0.0f;  // the same for all
        const steps st{s_.stride_w * ldx, y.ld, Track ? am.ld : 0};
        const index_t len = j1 - j0;
        for (; q + pixel_group <= in_.hi; q += pixel_group) {
          const T* base = img + (rh.lo * s_.w + rw.lo + (q - in_.lo) * s_.stride_w) * ldx + j0;
          T* yo = y.row(np * Q_ + q) + j0;
          std::int32_t* ao = Track ? am.row(np * Q_ + q) + j0 : nullptr;
          if (len == W ? !pixel<K, Track ? with_arg : no_arg, pixel_group, true, true>(base, off, tix, taps, inv, yo, ao, len, st)
                       : !pixel<K, Track ? with_arg : no_arg, pixel_group, false, true>(base, off, tix, taps, inv, yo, ao, len, st))
            first_nan<pixel_group, false, true>(base, off, tix, taps, yo, ao, len, st);
        }
        if (q >= Q_) break;
      }
      const span rw = cols_[std::size_t(q)];
      if (rw.lo - rw.start != built_lo || rw.hi - rw.start != built_hi) {
        built_lo = rw.lo - rw.start, built_hi = rw.hi - rw.start, taps = 0;
        for (index_t ih = rh.lo; ih < rh.hi; ++ih)
          for (index_t iw = rw.lo; iw < rw.hi; ++iw, ++taps) {
            off[taps] = ((ih - rh.lo) * s_.w + (iw - rw.lo)) * ldx;
            tix[taps] = std::int32_t((ih - rh.start) * S + (iw - rw.start));
          }
      }
      const float inv = K == pool_kind::avg ? inv_[std::size_t(p * Q_ + q)] : 0.0f;
      const index_t o = np * Q_ + q;
      const T* base = img + (rh.lo * s_.w + rw.lo) * ldx;
      T* yo = y.row(o);
      std::int32_t* ao = Track ? am.row(o) : nullptr;
      index_t j = j0;
      for (; j + block <= j1; j += block)
        if (!pixel<K, Track ? with_arg : no_arg, U, true>(base + j, off, tix, taps, inv, yo + j, Track ? ao + j : nullptr, W))
          first_nan<U, true, false>(base + j, off, tix, taps, yo + j, Track ? ao + j : nullptr, W);
      for (; j < j1; j += W)
        if (!pixel<K, Track ? with_arg : no_arg, 1, false>(base + j, off, tix, taps, inv, yo + j, Track ? ao + j : nullptr,
                                                           std::min(W, j1 - j)))
          first_nan<1, false, false>(base + j, off, tix, taps, yo + j, Track ? ao + j : nullptr, std::min(W, j1 - j));
    }
  }

  // Average pooling to one pixel per image (global pooling), channels [j0, j1) of image n: the window's
  // pixels summed a whole channel run at a time into a buffer (contiguous reads), in scan order as
  // pixel's, then scaled.
  static constexpr index_t global_chunk = 1024;
  void global_avg_chunk(mat<const T> x, mat<T> y, index_t n, index_t j0, index_t j1) const {
    alignas(64) float acc[global_chunk];
    const span rh = rows_[0], rw = cols_[0];
    const index_t len = j1 - j0;
    for (index_t j = 0; j < len; ++j) acc[j] = 0.0f;
    for (index_t ih = rh.lo; ih < rh.hi; ++ih)
      for (index_t iw = rw.lo; iw < rw.hi; ++iw) {
        const T* px = x.row((n * s_.h + ih) * s_.w + iw) + j0;
        index_t j = 0;
        for (; j + W <= len; j += W) lanes::store(acc + j, lanes::load<V>(acc + j) + lanes::load<V>(px + j));
        if (j < len) lanes::store(acc + j, lanes::load<V>(acc + j, len - j) + lanes::load<V>(px + j, len - j), len - j);
      }
    const V inv(inv_[0]);
    T* out = y.row(n) + j0;
    index_t j = 0;
    for (; j + W <= len; j += W) lanes::store(out + j, Policy::mul(lanes::load<V>(acc + j), inv));
    if (j < len) lanes::store(out + j, Policy::mul(lanes::load<V>(acc + j, len - j), inv), len - j);
  }

  // One input pixel's channel block (as pixel's): the sum over the windows that hold it.
  template <pool_kind K, int NV, bool Full>
  [[gnu::always_inline]] void gather(mat<const T> dy, mat<const std::int32_t> am, index_t n, index_t ih, index_t iw, index_t j, T* out, index_t len) const {
    V acc[NV];
    unroll<NV>([&](auto u) { acc[u] = V(0.0f); });
    const cover ch = row_cover_[std::size_t(ih)], cw = col_cover_[std::size_t(iw)];
    for (index_t p = ch.lo; p < ch.hi; ++p) {
      const std::int32_t tap_row = std::int32_t((ih - rows_[std::size_t(p)].start) * s_.s);
      for (index_t q = cw.lo; q < cw.hi; ++q) {
        const index_t o = (n * P_ + p) * Q_ + q;
        const T* g = dy.row(o) + j;
        if constexpr (K == pool_kind::avg) {
          const V inv(inv_[std::size_t(p * Q_ + q)]);
          unroll<NV>([&](auto u) { acc[u] = mul_add(ld<Full>(g, u, len), inv, acc[u]); });
        } else {
          const std::int32_t tap = tap_row + std::int32_t(iw - cols_[std::size_t(q)].start);
          const std::int32_t* a = am.data + o * am.ld + j;
          unroll<NV>([&](auto u) {
            const auto hit = is_tap(load_index(Full ? a + u * W : a, Full ? W : len), tap);
            acc[u] += lanes::select(hit, ld<Full>(g, u, len), V(0.0f));
          });
        }
      }
    }
    unroll<NV>([&](auto u) { st_store<Full>(out, u, acc[u], len); });
  }

  // One input row nh = (n, ih) when no two windows overlap (stride >= window both ways) and the channels
  // fit one vector: each window's columns written from its dy (and argmax) loaded once, the pixels no
  // window holds zeroed.
  template <pool_kind K>
  void backward_disjoint(mat<const T> dy, mat<T> dx, mat<const std::int32_t> am, index_t nh) const {
    const index_t n = nh / s_.h, ih = nh % s_.h, c = s_.c;
    const cover ch = row_cover_[std::size_t(ih)];
    const auto zero = [&](index_t iw) {
      T* out = dx.row(nh * s_.w + iw);
      index_t j = 0;
      for (; j + W <= c; j += W) lanes::store(out + j, V(0.0f));
      if (j < c) lanes::store(out + j, V(0.0f), c - j);
    };
    index_t iw = 0;
    if (ch.lo < ch.hi) {
      const index_t p = ch.lo;
      const std::int32_t tap_row = std::int32_t((ih - rows_[std::size_t(p)].start) * s_.s);
      for (index_t q = 0; q < Q_; ++q) {
        const span rw = cols_[std::size_t(q)];
        for (; iw < rw.lo; ++iw) zero(iw);
        const index_t o = (n * P_ + p) * Q_ + q;
        const V inv(K == pool_kind::avg ? inv_[std::size_t(p * Q_ + q)] : 0.0f);
        const auto run = [&]<int NV, bool Full>(index_t j, index_t len) {
          V g[NV];
          I a[NV];
          unroll<NV>([&](auto u) {
            g[u] = ld<Full>(dy.row(o) + j, u, len);
            if constexpr (K == pool_kind::avg)
              g[u] = mul_add(g[u], inv, V(0.0f));
            else
              a[u] = load_index(am.data + o * am.ld + j + u * W, Full ? W : len);
          });
          for (index_t x = rw.lo; x < rw.hi; ++x) {
            T* out = dx.row(nh * s_.w + x) + j;
            const std::int32_t tap = tap_row + std::int32_t(x - rw.start);
            unroll<NV>([&](auto u) {
              const V v = K == pool_kind::avg ? g[u] : lanes::select(is_tap(a[u], tap), g[u], V(0.0f));
              st_store<Full>(out, u, v, len);
            });
          }
        };
        index_t j = 0;
        for (; j + block <= c; j += block) run.template operator()<U, true>(j, W);
        for (; j < c; j += W) run.template operator()<1, false>(j, std::min(W, c - j));
        iw = rw.hi;
      }
    }
    for (; iw < s_.w; ++iw) zero(iw);
  }

  // One input row nh = (n, ih).
  template <pool_kind K>
  void backward_row(mat<const T> dy, mat<T> dx, mat<const std::int32_t> am, index_t nh) const {
    const index_t n = nh / s_.h, ih = nh % s_.h;
    for (index_t iw = 0; iw < s_.w; ++iw) {
      T* out = dx.row(nh * s_.w + iw);
      index_t j = 0;
      for (; j + block <= s_.c; j += block) gather<K, U, true>(dy, am, n, ih, iw, j, out + j, W);
      for (; j < s_.c; j += W) gather<K, 1, false>(dy, am, n, ih, iw, j, out + j, std::min(W, s_.c - j));
    }
  }

  pool2d_shape s_;
  index_t P_ = 0, Q_ = 0;
  std::vector<span> rows_, cols_;             // (P), (Q)
  std::vector<cover> row_cover_, col_cover_;  // (H), (W)
  std::vector<float> inv_;                    // (P*Q): 1 / count (average pooling)
  cover in_{0, 0};                            // the output columns whose windows are whole
  bool disjoint_ = false;                     // no two windows overlap, one vector of channels or fewer
};

}  // namespace tpp::dnn
