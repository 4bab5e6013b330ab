#pragma once
// dnn::conv2d: 2D convolution over NHWC activations and HWIO weights, forward and both backward passes,
// every product through the policy (DESIGN.md 3b and 7).
//
// Layouts (views): x (N*H*W, C), one row per input pixel; y (N*P*Q, K); w (R*S*C/groups, K), row
// (r*S + s)*(C/groups) + c, column k; group g owns input channels [g Cg, (g+1) Cg) and output channels
// [g Kg, (g+1) Kg) (Cg = C/groups, Kg = K/groups).
//
// Decomposition (libxsmm-dnn's, on brgemm_kernel), per image and output row:
//   forward          y(q range, Kg) = sum over the taps (r, s) of x(pixels q*stride + s*dil - pad, Cg) W_rs:
//                    one batch-reduce GEMM for the run of q whose taps all fall inside the image (its A rows
//                    are the input pixels stride apart: a view with ld = stride_w * x.ld), and one per
//                    border pixel over the taps that do; the epilogue sees y's own (row, column) indices
//   backward_data    dx(n, ih, iw) = sum over the taps that reach it of dy(n, p, q) W_rs^T, gathered per
//                    input row and per phase iw mod stride_w the same way (every dx pixel written once)
//   backward_weights dW_rs = sum over (n, p) of x(pixels of tap s)^T dy(n, p, q range of s): one
//                    batch-reduce GEMM per tap over the output rows, each thread summing its share of the
//                    rows into its own fp32 partial dW, then the partials added in thread order
// or, lowered (im2col), per chunk of output pixels: their receptive fields as rows of a (pixels,
// R*S*C/groups) matrix (x's own rows for a 1x1 stride-1 layer), then forward y = rows W, backward-data
// the rows' gradient dy W^T added back into dx per image, backward-weights rows^T dy into the thread's
// partial dW: plain GEMMs with k = R*S*C/groups;
// or, pixels (at most 8 input channels, groups 1, stride_w 1), vector loops along the output pixels over a
// channel-planar, zero-padded copy of each image (backward-data, at stride 1, as the same loops over dy
// with the taps flipped);
// or, depthwise (groups = C = K), vector loops along the channels. conv2d_algorithm says which runs where.
// Products are P(x, w) forward, P(dy, w) backward-data and P(x, dy) backward-weights (the operand order
// the contract gives), summed in fp32. Deterministic for a given thread count. OpenMP inside; called from
// inside a parallel region it runs on the calling thread.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../approx/exact.hpp"
#include "../approx/gemm_traits.hpp"
#include "../approx/policy.hpp"
#include "../arch/transpose.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/lanes.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/simd.hpp"
#include "../core/workspace.hpp"
#include "../ops/epilogue.hpp"
#include "../ops/gemm/brgemm.hpp"
#include "../ops/gemm/kernel.hpp"

namespace tpp::dnn {

struct conv2d_shape {
  index_t n = 0, h = 0, w = 0, c = 0;  // input: batch, height, width, channels
  index_t k = 0, r = 1, s = 1;         // output channels, filter height, filter width
  index_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  index_t groups = 1;

  // Output height (h + 2 pad_h - dilation_h (r - 1) - 1) / stride_h + 1, and width likewise.
  index_t p() const noexcept { return out_size(h, pad_h, dilation_h, r, stride_h); }
  index_t q() const noexcept { return out_size(w, pad_w, dilation_w, s, stride_w); }

 private:
  static index_t out_size(index_t in, index_t pad, index_t dil, index_t taps, index_t stride) noexcept {
    const index_t span = in + 2 * pad - dil * (taps - 1) - 1;
    return span < 0 || stride < 1 ? 0 : span / stride + 1;
  }
};

// The loop nest a conv2d runs (all give the same sums of the same products, in different orders).
enum class conv2d_algorithm {
  automatic,  // pixels where it applies; lowered for C/groups < 32 or output width < 16 (direct's blocks
              // are small), for a 1x1 stride-1 layer (a plain GEMM on x itself), and wherever direct's
              // blocks would not run LIBXSMM's kernels; direct otherwise, its backward-weights lowered
  direct,     // batch-reduce GEMMs over (tap, channel block) per output row
  lowered,    // chunks of output pixels lowered to rows of their receptive fields (im2col; x's own rows
              // for a 1x1 stride-1 layer), one GEMM each
  pixels      // vector loops along the output pixels, for layers of at most 8 input channels (a first
              // layer: LeNet's one, RGB's three), groups 1 and stride_w 1 (automatic: output rows of at
              // least 1.5 vectors); backward-data too when stride_h is 1, else lowered. Other shapes take
              // the automatic choice.
};

namespace detail {

using tpp::detail::concat;

inline void check_positive(std::string_view op, std::string_view field, index_t v) {
  if (v < 1) throw error(op, field, concat("(", std::to_string(v), ") must be at least 1"));
}

// Every field in range, and every view size conv2d forms fits index_t.
inline void check_conv2d_shape(std::string_view op, const conv2d_shape& s) {
  using field = std::pair<std::string_view, index_t>;
  for (const field& f : {field{"n", s.n}, field{"h", s.h}, field{"w", s.w}, field{"c", s.c}, field{"k", s.k},
                         field{"r", s.r}, field{"s", s.s}, field{"stride_h", s.stride_h}, field{"stride_w", s.stride_w},
                         field{"dilation_h", s.dilation_h}, field{"dilation_w", s.dilation_w}, field{"groups", s.groups}})
    check_positive(op, f.first, f.second);
  for (const field& f : {field{"pad_h", s.pad_h}, field{"pad_w", s.pad_w}})
    if (f.second < 0) throw error(op, f.first, concat("(", std::to_string(f.second), ") is negative"));
  if (s.c % s.groups != 0)
    throw error(op, "groups", concat("(", std::to_string(s.groups), ") does not divide c (", std::to_string(s.c), ")"));
  if (s.k % s.groups != 0)
    throw error(op, "groups", concat("(", std::to_string(s.groups), ") does not divide k (", std::to_string(s.k), ")"));
  // Sizes whose products must fit: the views' element counts and the padded extents.
  const index_t big = std::numeric_limits<index_t>::max() / 4;
  const auto fits = [&](std::initializer_list<index_t> f) {
    index_t acc = 1;
    for (index_t v : f)
      if (!tpp::detail::checked_mul(acc, v, acc) || acc > big) return false;
    return true;
  };
  if (!fits({s.n, s.h, s.w, s.c})) throw error(op, "n", "n * h * w * c overflows index_t");
  if (!fits({s.r, s.s, s.c, s.k})) throw error(op, "k", "r * s * c * k overflows index_t");
  if (!fits({s.dilation_h, s.r}) || !fits({s.dilation_w, s.s}) || s.pad_h > big || s.pad_w > big)
    throw error(op, "pad_h", "the padded and dilated extents overflow index_t");
  const index_t fh = s.dilation_h * (s.r - 1) + 1, fw = s.dilation_w * (s.s - 1) + 1;
  if (s.pad_h >= fh)
    throw error(op, "pad_h", concat("(", std::to_string(s.pad_h), ") is not below the dilated filter height (",
                                    std::to_string(fh), "): some outputs would see only padding"));
  if (s.pad_w >= fw)
    throw error(op, "pad_w", concat("(", std::to_string(s.pad_w), ") is not below the dilated filter width (",
                                    std::to_string(fw), "): some outputs would see only padding"));
  if (s.p() < 1)
    throw error(op, "h", concat("(", std::to_string(s.h), ") with this padding is smaller than the dilated filter (",
                                std::to_string(fh), "): no output rows"));
  if (s.q() < 1)
    throw error(op, "w", concat("(", std::to_string(s.w), ") with this padding is smaller than the dilated filter (",
                                std::to_string(fw), "): no output columns"));
  if (!fits({s.n, s.p(), s.q(), s.k})) throw error(op, "n", "n * p * q * k overflows index_t");
}

// floor(a / b) for b > 0.
constexpr index_t floor_div(index_t a, index_t b) noexcept { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The output positions t in [0, count) with 0 <= t * stride + off < in for every off in [lo_off, hi_off]:
// the run [lo, hi) whose taps all fall inside (empty: lo = hi).
struct run {
  index_t lo, hi;
};
constexpr run inside(index_t count, index_t stride, index_t lo_off, index_t hi_off, index_t in) noexcept {
  const index_t lo = std::max<index_t>(0, floor_div(-lo_off + stride - 1, stride));
  const index_t hi = std::min<index_t>(count, floor_div(in - 1 - hi_off, stride) + 1);
  return hi > lo ? run{lo, hi} : run{lo, lo};
}

// The channel block a batch entry reduces over: all of c when c <= 128, else the largest divisor of c in
// [32, 128] (every entry of a batch has one shape), else all of c.
constexpr index_t channel_block(index_t c) noexcept {
  if (c <= 128) return c;
  for (index_t b = 128; b >= 32; --b)
    if (c % b == 0) return b;
  return c;
}

// f(t0, rows, inside) over the positions [0, count): the run `in` as one block (inside = true), then every
// other position alone, in order.
template <class F>
void for_each_block(index_t count, run in, F&& f) {
  const bool has_run = in.hi > in.lo;
  if (has_run) f(in.lo, in.hi - in.lo, true);
  for (index_t t = 0; t < count; ++t) {
    if (t == in.lo && has_run) t = in.hi;
    if (t >= count) break;
    f(t, index_t{1}, false);
  }
}

// to[i] = from[i] + off: a batch's B pointers moved to another column block.
template <class T>
void shifted(const std::vector<const T*>& from, index_t off, std::vector<const T*>& to) {
  to.resize(from.size());
  for (std::size_t i = 0; i < from.size(); ++i) to[i] = from[i] + off;
}

// An epilogue called with the block's offsets added, so the user's sees y's own row and column indices.
template <class E>
struct offset_epilogue {
  const E& e;
  index_t i0, j0;
  void operator()(index_t i, index_t j, float* row, index_t n) const { e(i + i0, j + j0, row, n); }
};

}  // namespace detail

template <class Policy = approx::exact, class T = float>
  requires approx::multiplier<Policy> && (std::same_as<T, float> || std::same_as<T, bf16>)
class conv2d {
 public:
  static constexpr std::string_view label = "conv2d";

  explicit conv2d(conv2d_shape shape, conv2d_algorithm algorithm = conv2d_algorithm::automatic) : s_(shape) {
    detail::check_conv2d_shape(label, s_);
    approx::check_policy<Policy>();
    P_ = s_.p();
    Q_ = s_.q();
    cg_ = s_.c / s_.groups;
    kg_ = s_.k / s_.groups;
    // (automatic: rows of at least 3/4 of a tile of 2 vectors, or the lanes past Q cost more than pixels saves;
    // any rows for a policy with a packed path (below), whose lowered GEMMs at these small n and k cost
    // more: LeNet's second layer, 10-pixel rows, bf16_rz: forward 1.3x, backward-weights 2.4x faster than
    // lowered. Table policies keep lowered: their GEMM path builds product tables the pixels nest lacks.
    // Backward-data keeps the rule: its K input planes make the pixels loop long)
    const bool fits = s_.groups == 1 && s_.c <= 8 && s_.stride_w == 1;
    const bool wide = 4 * Q_ >= 3 * 2 * W;
    pixels_ = fits && (algorithm == conv2d_algorithm::pixels ||
                       (algorithm == conv2d_algorithm::automatic && (wide || packs)));
    pixels_data_ = pixels_ && s_.stride_h == 1 && (algorithm == conv2d_algorithm::pixels || wide);
    // (automatic: direct only where its per-row blocks are large and run LIBXSMM's JIT kernels; on tpp's
    // own loops every per-row call would pack its weight panels again, which a lowered chunk does once
    // per 256 pixels or more)
    const bool small = cg_ < 32 || Q_ < 16;
    const bool automatic = algorithm == conv2d_algorithm::automatic;
    lowered_ = !depthwise() && (pixels_ || algorithm == conv2d_algorithm::lowered ||
                                (automatic && (small || pointwise() || !direct_runs_jit())));
    // (backward-weights: direct's per-tap batches transpose x inside every GEMM call; lowered transposes
    // each chunk's rows once)
    lowered_weights_ = !depthwise() && (lowered_ || automatic);
  }

  const conv2d_shape& shape() const noexcept { return s_; }
  // The loop nest forward runs: direct, lowered or pixels (a depthwise layer's channel loops count as
  // direct).
  conv2d_algorithm algorithm() const noexcept {
    return pixels_ ? conv2d_algorithm::pixels : lowered_ ? conv2d_algorithm::lowered : conv2d_algorithm::direct;
  }

  // y (N*P*Q, K) = conv(x, w), then the epilogue on each finished block (bias, activation, ...).
  template <class Epilogue = epilogue::none>
    requires epilogue::callable<Epilogue>
  void forward(mat<const T> x, mat<const T> w, mat<T> y, const Epilogue& ep = {}) const {
    check_pass("conv2d::forward", {x, "x", tensor::activations}, {w, "w", tensor::weights}, {y, "y", tensor::outputs});
    if (depthwise()) return depthwise_forward(x, w, y, ep);
    if (pixels_) return pixels_forward(x, w, y, ep);
    if (lowered_) return lowered_forward(x, w, y, ep);
    const conv2d_shape& s = s_;
    const detail::run in = interior();
    using kernel = brgemm_kernel<Policy, T, T, T>;
    const index_t m_in = in.hi - in.lo;
    // Blocks: the batch runs over (r, s, channel block of cb), C over output channel blocks of kb (and the
    // last, shorter one): every GEMM dimension within LIBXSMM's small-block range, and each C block's
    // accumulators and B panels in cache.
    const index_t cb = detail::channel_block(cg_), kb = std::min<index_t>(kg_, 128), k_tail = kg_ % kb;
    const auto make = [&](index_t m, index_t n, index_t lda) { return kernel({std::max<index_t>(m, 1), n, cb, lda, w.ld, y.ld}); };
    const kernel interior = make(m_in, kb, s.stride_w * x.ld), pixel = make(1, kb, x.ld);
    const kernel interior_tail = make(m_in, std::max<index_t>(k_tail, 1), s.stride_w * x.ld),
                 pixel_tail = make(1, std::max<index_t>(k_tail, 1), x.ld);
    parallel_for(s.n * P_, [&](index_t b, index_t e) {
      std::vector<const T*> A, B0, B;
      for (index_t np = b; np < e; ++np) {
        const index_t n = np / P_, p = np % P_, y0 = np * Q_;
        for (index_t g = 0; g < s.groups; ++g) {
          // the taps (r, s) of output pixel q that fall inside the image, each channel block of each
          const auto taps = [&](index_t q, bool all_s) {
            A.clear();
            B0.clear();
            for (index_t r = 0; r < s.r; ++r) {
              const index_t ih = p * s.stride_h - s.pad_h + r * s.dilation_h;
              if (ih < 0 || ih >= s.h) continue;
              for (index_t t = 0; t < s.s; ++t) {
                const index_t iw = q * s.stride_w - s.pad_w + t * s.dilation_w;
                if (!all_s && (iw < 0 || iw >= s.w)) continue;
                for (index_t c0 = 0; c0 < cg_; c0 += cb) {
                  A.push_back(x.row((n * s.h + ih) * s.w + iw) + g * cg_ + c0);
                  B0.push_back(w.row((r * s.s + t) * cg_ + c0) + g * kg_);
                }
              }
            }
          };
          // y(q0 .. q0 + rows) over every output channel block
          detail::for_each_block(Q_, in, [&](index_t q0, index_t rows, bool inside) {
            taps(q0, inside);
            for (index_t k0 = 0; k0 < kg_; k0 += kb) {
              detail::shifted(B0, k0, B);
              const index_t cols = std::min(kb, kg_ - k0);
              const mat<T> c{y.row(y0 + q0) + g * kg_ + k0, rows, cols, y.ld};
              const kernel& k = cols == kb ? (inside ? interior : pixel) : (inside ? interior_tail : pixel_tail);
              if constexpr (std::is_same_v<Epilogue, epilogue::none>)
                k.by_address(A, B, c);
              else
                k.by_address(A, B, c, detail::offset_epilogue<Epilogue>{ep, y0 + q0, g * kg_ + k0});
            }
          });
        }
      }
    });
  }

  // The scratch backward_data takes: the filter taps transposed (none for a depthwise or lowered layer).
  std::size_t backward_data_workspace_bytes() const {
    return depthwise() || lowered_ ? 0 : scratch_size{}.take<T>(std::size_t(s_.r * s_.s * cg_ * s_.k)).bytes();
  }

  // dx (N*H*W, C) = the gradient of x for dy (N*P*Q, K); overwritten. Scratch from ws (at least
  // backward_data_workspace_bytes()) or, by default, the calling thread's arena.
  void backward_data(mat<const T> dy, mat<const T> w, mat<T> dx, workspace ws = {}) const {
    constexpr std::string_view op = "conv2d::backward_data";
    check_pass(op, {dy, "dy", tensor::outputs}, {w, "w", tensor::weights}, {dx, "dx", tensor::activations});
    if (depthwise()) return depthwise_backward_data(dy, w, dx);
    if (pixels_backward_data_applies()) return pixels_backward_data(dy, w, dx);
    if (lowered_) return lowered_backward_data(dy, w, dx);
    const conv2d_shape& s = s_;
    const index_t sw = s.stride_w;
    // W_rs^T of each tap and group, (Kg, Cg) dense, so the GEMMs read B untransposed.
    scratch frame(ws, op);
    T* const wt = frame.take<T>(std::size_t(s.r * s.s * cg_ * s.k));
    parallel_for(s.r * s.s * s.groups, [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        const index_t rs = i / s.groups, g = i % s.groups;
        T* o = wt + i * kg_ * cg_;
        for (index_t c = 0; c < cg_; ++c) {
          const T* wr = w.row(rs * cg_ + c) + g * kg_;
          for (index_t k = 0; k < kg_; ++k) o[k * cg_ + c] = wr[k];
        }
      }
    });
    // Per phase f = iw mod sw: the input pixels iw = f + sw t, the taps s with (f + pad - s dil) a multiple
    // of sw, each reading dy pixel q = t + off_s; the run of t inside for all of them.
    struct phase {
      index_t count;                // pixels t of this phase
      std::vector<index_t> s, off;  // contributing filter columns and their offsets
      detail::run in;
    };
    std::vector<phase> phases(static_cast<std::size_t>(sw));
    for (index_t f = 0; f < sw; ++f) {
      phase& ph = phases[std::size_t(f)];
      ph.count = f < s.w ? (s.w - f + sw - 1) / sw : 0;
      index_t lo = std::numeric_limits<index_t>::max(), hi = std::numeric_limits<index_t>::min();
      for (index_t t = 0; t < s.s; ++t) {
        const index_t a = f + s.pad_w - t * s.dilation_w;
        if (a - detail::floor_div(a, sw) * sw != 0) continue;
        ph.s.push_back(t);
        ph.off.push_back(detail::floor_div(a, sw));
        lo = std::min(lo, ph.off.back());
        hi = std::max(hi, ph.off.back());
      }
      ph.in = ph.s.empty() ? detail::run{0, 0} : detail::inside(ph.count, 1, lo, hi, Q_);
    }
    // Blocks as forward's: the batch over (r, s, block of kb output channels), C over blocks of cb input
    // channels (and the last, shorter one).
    using kernel = brgemm_kernel<Policy, T, T, T>;
    const index_t kb = detail::channel_block(kg_), cb = std::min<index_t>(cg_, 128), c_tail = cg_ % cb;
    const auto make = [&](index_t m, index_t n, index_t ldc) { return kernel({std::max<index_t>(m, 1), std::max<index_t>(n, 1), kb, dy.ld, cg_, ldc}); };
    std::vector<kernel> interior, interior_tail;
    interior.reserve(std::size_t(sw));
    interior_tail.reserve(std::size_t(sw));
    for (const phase& ph : phases) {
      interior.push_back(make(ph.in.hi - ph.in.lo, cb, sw * dx.ld));
      interior_tail.push_back(make(ph.in.hi - ph.in.lo, c_tail, sw * dx.ld));
    }
    const kernel pixel = make(1, cb, dx.ld), pixel_tail = make(1, c_tail, dx.ld);
    parallel_for(s.n * s.h, [&](index_t b, index_t e) {
      std::vector<const T*> A, B0, B;
      for (index_t nh = b; nh < e; ++nh) {
        const index_t n = nh / s.h, ih = nh % s.h;
        for (index_t g = 0; g < s.groups; ++g)
          for (index_t f = 0; f < sw; ++f) {
            const phase& ph = phases[std::size_t(f)];
            const auto taps = [&](index_t t, bool all) {
              A.clear();
              B0.clear();
              for (index_t r = 0; r < s.r; ++r) {
                const index_t a = ih + s.pad_h - r * s.dilation_h;
                if (a < 0 || a % s.stride_h != 0 || a / s.stride_h >= P_) continue;
                const index_t p = a / s.stride_h;
                for (std::size_t i = 0; i < ph.s.size(); ++i) {
                  const index_t q = t + ph.off[i];
                  if (!all && (q < 0 || q >= Q_)) continue;
                  const T* wt_rs = wt + ((r * s.s + ph.s[i]) * s.groups + g) * kg_ * cg_;
                  for (index_t k0 = 0; k0 < kg_; k0 += kb) {
                    A.push_back(dy.row((n * P_ + p) * Q_ + q) + g * kg_ + k0);
                    B0.push_back(wt_rs + k0 * cg_);
                  }
                }
              }
            };
            // dx(pixels t0 .. t0 + rows of this phase) over every input channel block
            detail::for_each_block(ph.count, ph.in, [&](index_t t0, index_t rows, bool inside) {
              taps(t0, inside);
              for (index_t c0 = 0; c0 < cg_; c0 += cb) {
                detail::shifted(B0, c0, B);
                const index_t cols = std::min(cb, cg_ - c0);
                const kernel& k = inside ? (cols == cb ? interior : interior_tail)[std::size_t(f)]
                                         : (cols == cb ? pixel : pixel_tail);
                k.by_address(A, B, mat<T>{dx.row((n * s.h + ih) * s.w + f + sw * t0) + g * cg_ + c0, rows, cols,
                                          inside ? sw * dx.ld : dx.ld});
              }
            });
          }
      }
    });
  }

  // The scratch backward_weights takes: one fp32 partial dW per thread (max_threads() at this call; a
  // call from inside a parallel region needs one).
  std::size_t backward_weights_workspace_bytes() const {
    return scratch_size{}.take<float>(std::size_t(weight_parts() * s_.r * s_.s * cg_ * s_.k)).bytes();
  }

  // dw (R*S*C/groups, K) = the gradient of w for x and dy; overwritten. Scratch from ws (at least
  // backward_weights_workspace_bytes()) or, by default, the calling thread's arena.
  void backward_weights(mat<const T> x, mat<const T> dy, mat<T> dw, workspace ws = {}) const {
    constexpr std::string_view op = "conv2d::backward_weights";
    check_pass(op, {x, "x", tensor::activations}, {dy, "dy", tensor::outputs}, {dw, "dw", tensor::weights});
    const conv2d_shape& s = s_;
    const index_t rows = s.r * s.s * cg_, pairs = s.n * P_, parts = weight_parts();
    scratch frame(ws, op);
    float* const partial = frame.take<float>(std::size_t(parts * rows * s.k));
    if (depthwise()) return depthwise_backward_weights(x, dy, dw, partial, parts);
    if (pixels_) return pixels_backward_weights(x, dy, dw, partial, parts);
    if (lowered_weights_) return lowered_backward_weights(x, dy, dw, partial, parts);
    using kernel = brgemm_kernel<Policy, T, T, float>;
    const gemm_params ta{1.0f, 0.0f, true, false};  // A_i = x's pixels, used transposed
    // Per filter column s: the output columns q whose input pixel is inside, and its kernel (k = their count).
    std::vector<detail::run> qs;
    std::vector<kernel> per_s;
    per_s.reserve(std::size_t(s.s));
    for (index_t t = 0; t < s.s; ++t) {
      const index_t off = t * s.dilation_w - s.pad_w;
      qs.push_back(detail::inside(Q_, s.stride_w, off, off, s.w));
      per_s.emplace_back(gemm_shape{cg_, kg_, std::max<index_t>(qs.back().hi - qs.back().lo, 1), s.stride_w * x.ld, dy.ld, s.k}, ta);
    }
    parallel_for(parts, [&](index_t b, index_t e) {
      std::vector<const T*> A, B;
      for (index_t part = b; part < e; ++part) {
        const range share = split(pairs, parts, part);
        float* acc = partial + part * rows * s.k;
        for (index_t r = 0; r < s.r; ++r)
          for (index_t t = 0; t < s.s; ++t)
            for (index_t g = 0; g < s.groups; ++g) {
              const detail::run qr = qs[std::size_t(t)];
              A.clear();
              B.clear();
              if (qr.hi > qr.lo)
                for (index_t np = share.begin; np < share.end; ++np) {
                  const index_t n = np / P_, p = np % P_;
                  const index_t ih = p * s.stride_h - s.pad_h + r * s.dilation_h;
                  if (ih < 0 || ih >= s.h) continue;
                  const index_t iw = qr.lo * s.stride_w - s.pad_w + t * s.dilation_w;
                  A.push_back(x.row((n * s.h + ih) * s.w + iw) + g * cg_);
                  B.push_back(dy.row(np * Q_ + qr.lo) + g * kg_);
                }
              per_s[std::size_t(t)].by_address(A, B, mat<float>{acc + (r * s.s + t) * cg_ * s.k + g * kg_, cg_, kg_, s.k});
            }
      }
    });
    sum_parts(partial, parts, dw);
  }

 private:
  // dw = the parts' partial dW (parts x dw's shape, dense) summed in part order.
  static void sum_parts(const float* partial, index_t parts, mat<T> dw) {
    const index_t rows = dw.rows, cols = dw.cols;
    parallel_for(rows, [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) {
        T* out = dw.row(i);
        for (index_t j = 0; j < cols; ++j) {
          float v = partial[i * cols + j];
          for (index_t part = 1; part < parts; ++part) v += partial[(part * rows + i) * cols + j];
          out[j] = from_float<T>(v);
        }
      }
    });
  }

  // ---- depthwise (groups = C = K): vector loops over the channels, a pixel's taps summed in registers ----
  // (one channel per group makes every GEMM of the general path 1 x 1: all call overhead)

  using V = simd::lane;
  static constexpr index_t W = lanes::width<V>;

  static V step(V acc, V a, V b) noexcept {
    if constexpr (std::is_same_v<Policy, approx::exact>)
      return lanes::fma(a, b, acc);
    else
      return acc + Policy::mul(a, b);
  }
  struct stored_step {  // step() as a step type: the policy's own mul on stored operands
    static V step(V acc, V a, V b) noexcept { return conv2d::step(acc, a, b); }
  };
  // The pixels nest's packed path (approx/gemm_traits.hpp): for a policy whose GEMM packs its operands
  // (bf16, drum, truncated: reduced operands and an FMA; mitchell, mbm: bit-pattern adds), both operands
  // are packed once (weights per call, each image's planes as they are made) and the step runs on them,
  // bit for bit the policy's products while the planes' and weights' exponent ranges keep every product
  // normal (products_in_range); an image that fails takes the stored operands and the policy's own mul.
  using traits = approx::gemm_traits<Policy>;
  static constexpr bool packs = traits::path == approx::gemm_path::packed;
  struct packed_step_of {  // zero-specialised steps: padding zeros always, weight zeros possibly
    static auto pick() {
      if constexpr (!packs)
        return stored_step{};
      else if constexpr (traits::zero_specialised)
        return typename traits::template zero_step<true, true>{};
      else
        return traits{};
    }
  };
  using packed_step = decltype(packed_step_of::pick());
  template <class U>
  static V ld(const U* p, index_t n) noexcept {
    return n == W ? lanes::load<V>(p) : lanes::load<V>(p, n);
  }
  // f(j, n) over the channel chunks of a row: full vectors, then the tail.
  template <class F>
  void chunks(F&& f) const {
    index_t j = 0;
    for (; j + W <= s_.c; j += W) f(j, W);
    if (j < s_.c) f(j, s_.c - j);
  }
  bool depthwise() const noexcept { return cg_ == 1 && kg_ == 1; }

  // f(nb, j, len) over the channels in blocks: nb = 8 whole vectors from j while 8 fit, then single
  // vectors (the last len lanes wide); nb a std::integral_constant, so a block's accumulators stay in
  // registers while the taps' index arithmetic is paid once per block.
  template <class F>
  void channel_blocks(F&& f) const {
    constexpr index_t NB = 8;
    index_t j = 0;
    for (; j + NB * W <= s_.c; j += NB * W) f(std::integral_constant<index_t, NB>{}, j, W);
    for (; j < s_.c; j += W) f(std::integral_constant<index_t, 1>{}, j, std::min(W, s_.c - j));
  }

  template <class Epilogue>
  void depthwise_forward(mat<const T> x, mat<const T> w, mat<T> y, const Epilogue& ep) const {
    const conv2d_shape& s = s_;
    parallel_for(s.n * P_, [&](index_t b, index_t e) {
      std::vector<float> row(std::is_same_v<T, float> ? 0 : std::size_t(s.c));
      for (index_t np = b; np < e; ++np) {
        const index_t n = np / P_, p = np % P_;
        for (index_t q = 0; q < Q_; ++q) {
          T* yr = y.row(np * Q_ + q);
          float* out;
          if constexpr (std::is_same_v<T, float>)
            out = yr;
          else
            out = row.data();
          channel_blocks([&](auto nb, index_t j, index_t len) {
            constexpr index_t nv = decltype(nb)::value;
            V acc[nv];
            for (V& a : acc) a = V(0.0f);
            for (index_t r = 0; r < s.r; ++r) {
              const index_t ih = p * s.stride_h - s.pad_h + r * s.dilation_h;
              if (ih < 0 || ih >= s.h) continue;
              for (index_t t = 0; t < s.s; ++t) {
                const index_t iw = q * s.stride_w - s.pad_w + t * s.dilation_w;
                if (iw < 0 || iw >= s.w) continue;
                const T* xr = x.row((n * s.h + ih) * s.w + iw) + j;
                const T* wr = w.row(r * s.s + t) + j;
#pragma GCC unroll 8
                for (index_t v = 0; v < nv; ++v) acc[v] = step(acc[v], ld(xr + v * W, len), ld(wr + v * W, len));
              }
            }
            for (index_t v = 0; v < nv; ++v) lanes::store(out + j + v * W, acc[v], len);
          });
          if constexpr (!std::is_same_v<Epilogue, epilogue::none>) ep(np * Q_ + q, 0, out, s.c);
          if constexpr (!std::is_same_v<T, float>)
            chunks([&](index_t j, index_t len) { lanes::store(yr + j, ld(out + j, len), len); });
        }
      }
    });
  }

  void depthwise_backward_data(mat<const T> dy, mat<const T> w, mat<T> dx) const {
    const conv2d_shape& s = s_;
    parallel_for(s.n * s.h, [&](index_t b, index_t e) {
      for (index_t nh = b; nh < e; ++nh) {
        const index_t n = nh / s.h, ih = nh % s.h;
        for (index_t iw = 0; iw < s.w; ++iw)
          channel_blocks([&](auto nb, index_t j, index_t len) {
            constexpr index_t nv = decltype(nb)::value;
            V acc[nv];
            for (V& a : acc) a = V(0.0f);
            for (index_t r = 0; r < s.r; ++r) {
              const index_t a = ih + s.pad_h - r * s.dilation_h;
              if (a < 0 || a % s.stride_h != 0 || a / s.stride_h >= P_) continue;
              for (index_t t = 0; t < s.s; ++t) {
                const index_t c = iw + s.pad_w - t * s.dilation_w;
                if (c < 0 || c % s.stride_w != 0 || c / s.stride_w >= Q_) continue;
                const T* dr = dy.row((n * P_ + a / s.stride_h) * Q_ + c / s.stride_w) + j;
                const T* wr = w.row(r * s.s + t) + j;
#pragma GCC unroll 8
                for (index_t v = 0; v < nv; ++v) acc[v] = step(acc[v], ld(dr + v * W, len), ld(wr + v * W, len));
              }
            }
            T* out = dx.row(nh * s.w + iw) + j;
            for (index_t v = 0; v < nv; ++v) lanes::store(out + v * W, acc[v], len);
          });
      }
    });
  }

  void depthwise_backward_weights(mat<const T> x, mat<const T> dy, mat<T> dw, float* partial, index_t parts) const {
    const conv2d_shape& s = s_;
    const index_t taps = s.r * s.s;
    parallel_for(parts, [&](index_t b, index_t e) {
      for (index_t part = b; part < e; ++part) {
        const range share = split(s.n * P_, parts, part);
        for (index_t r = 0; r < s.r; ++r)
          for (index_t t = 0; t < s.s; ++t) {
            const index_t off = t * s.dilation_w - s.pad_w;
            const detail::run qr = detail::inside(Q_, s.stride_w, off, off, s.w);
            float* acc_row = partial + (part * taps + r * s.s + t) * s.c;
            channel_blocks([&](auto nb, index_t j, index_t len) {
              constexpr index_t nv = decltype(nb)::value;
            V acc[nv];
              for (V& a : acc) a = V(0.0f);
              for (index_t np = share.begin; np < share.end; ++np) {
                const index_t n = np / P_, ih = (np % P_) * s.stride_h - s.pad_h + r * s.dilation_h;
                if (ih < 0 || ih >= s.h) continue;
                for (index_t q = qr.lo; q < qr.hi; ++q) {
                  const T* xr = x.row((n * s.h + ih) * s.w + q * s.stride_w + off) + j;
                  const T* dr = dy.row(np * Q_ + q) + j;
#pragma GCC unroll 8
                  for (index_t v = 0; v < nv; ++v) acc[v] = step(acc[v], ld(xr + v * W, len), ld(dr + v * W, len));
                }
              }
              for (index_t v = 0; v < nv; ++v) lanes::store(acc_row + j + v * W, acc[v], len);
            });
          }
      }
    });
    sum_parts(partial, parts, dw);
  }

  // The output columns whose taps all fall inside the image: direct forward's interior run.
  detail::run interior() const noexcept {
    return detail::inside(Q_, s_.stride_w, -s_.pad_w, (s_.s - 1) * s_.dilation_w - s_.pad_w, s_.w);
  }

  // Whether forward's interior blocks (direct) would run LIBXSMM's kernels: an exact fp32 layer built with
  // LIBXSMM whose blocks are in its range and for which it returns a kernel.
  bool direct_runs_jit() const {
    const detail::run in = interior();
    if (in.hi <= in.lo) return false;
    const index_t kb = std::min<index_t>(kg_, 128);
    return brgemm_kernel<Policy, T, T, T>({in.hi - in.lo, kb, detail::channel_block(cg_), s_.stride_w * s_.c, s_.k, s_.k})
        .uses_libxsmm();
  }

  // ---- lowered: chunks of output pixels as rows of their receptive fields, one GEMM per chunk and group ----
  // (k = R*S*C/groups in place of direct's C/groups, m = a chunk of pixels across rows and images in place
  // of one output row: the blocks stay large where direct's are small; the weights are already the
  // (R*S*C/groups, K) matrix the rows multiply)

  index_t field() const noexcept { return s_.r * s_.s * cg_; }  // a receptive field's length
  // Output pixels a chunk holds: 256 to 2048 (its lowered rows about 8 MiB of fp32 at most, and each
  // chunk's packing of W spread over at least 256 rows), and no more than a thread's share (the calling
  // thread's inside a parallel region).
  index_t chunk_pixels() const noexcept {
    const index_t threads = in_parallel() ? 1 : max_threads();
    const index_t share = (s_.n * P_ * Q_ + threads - 1) / threads;
    return std::max<index_t>(1, std::min(share, std::clamp<index_t>((index_t(1) << 21) / field() / 16 * 16, 256, 2048)));
  }

  // A 1x1 filter at stride 1 without padding: every output pixel's receptive field is its own input pixel.
  bool pointwise() const noexcept {
    return s_.r == 1 && s_.s == 1 && s_.stride_h == 1 && s_.stride_w == 1 && s_.pad_h == 0 && s_.pad_w == 0;
  }

  // The lowered rows (m, field()) of output pixels [i0, i0 + m), group g: x's own rows when pointwise,
  // else lowered into col.
  mat<const T> lowered_rows(mat<const T> x, index_t i0, index_t m, index_t g, T* col) const {
    if (pointwise()) return {x.row(i0) + g * cg_, m, cg_, x.ld};
    lower(x, i0, m, g, col);
    return {col, m, field(), field()};
  }

  // col (m, field()) = group g's receptive fields of the output pixels [i0, i0 + m) (indices over N*P*Q),
  // zeros where a tap falls in the padding.
  void lower(mat<const T> x, index_t i0, index_t m, index_t g, T* col) const {
    const conv2d_shape& s = s_;
    // a filter row's taps in one copy when they are adjacent pixels whose channels are all of this group
    const bool rows_whole = s.dilation_w == 1 && s.groups == 1 && x.ld == s.c;
    for (index_t i = 0; i < m; ++i) {
      const index_t pix = i0 + i, n = pix / (P_ * Q_), p = pix / Q_ % P_, q = pix % Q_;
      T* out = col + i * field();
      const index_t iw0 = q * s.stride_w - s.pad_w;
      const bool w_inside = iw0 >= 0 && iw0 + (s.s - 1) * s.dilation_w < s.w;
      for (index_t r = 0; r < s.r; ++r, out += s.s * cg_) {
        const index_t ih = p * s.stride_h - s.pad_h + r * s.dilation_h;
        if (ih < 0 || ih >= s.h) {
          std::fill_n(out, s.s * cg_, T{});
          continue;
        }
        const T* in = x.row((n * s.h + ih) * s.w) + g * cg_;
        if (rows_whole && w_inside) {
          std::copy_n(in + iw0 * x.ld, s.s * cg_, out);
          continue;
        }
        for (index_t t = 0; t < s.s; ++t) {
          const index_t iw = iw0 + t * s.dilation_w;
          if (iw < 0 || iw >= s.w)
            std::fill_n(out + t * cg_, cg_, T{});
          else
            std::copy_n(in + iw * x.ld, cg_, out + t * cg_);
        }
      }
    }
  }

  template <class Epilogue>
  void lowered_forward(mat<const T> x, mat<const T> w, mat<T> y, const Epilogue& ep) const {
    const index_t kk = field(), total = s_.n * P_ * Q_, chunk = chunk_pixels();
    parallel_for((total + chunk - 1) / chunk, [&](index_t b, index_t e) {
      scratch frame;
      T* const col = frame.take<T>(std::size_t(chunk * kk));
      for (index_t ch = b; ch < e; ++ch) {
        const index_t i0 = ch * chunk, m = std::min(chunk, total - i0);
        for (index_t g = 0; g < s_.groups; ++g) {
          const mat<const T> a = lowered_rows(x, i0, m, g, col), wg{w.data + g * kg_, kk, kg_, w.ld};
          const gemm_kernel<Policy, T, T, T> gemm({m, kg_, kk, a.ld, w.ld, y.ld});
          const mat<T> c{y.row(i0) + g * kg_, m, kg_, y.ld};
          if constexpr (std::is_same_v<Epilogue, epilogue::none>)
            gemm(a, wg, c);
          else
            gemm(a, wg, c, detail::offset_epilogue<Epilogue>{ep, i0, g * kg_});
        }
      }
    });
  }

  // The gradient of each chunk's lowered rows, dcol = dy W^T (products P(dy, w)), added back into the
  // pixels each row was lowered from. A unit of work owns whole images, so no two threads add into one dx
  // pixel: several images per chunk when an image has fewer output pixels than a chunk, else one image
  // in chunks of its pixels.
  void lowered_backward_data(mat<const T> dy, mat<const T> w, mat<T> dx) const {
    const conv2d_shape& s = s_;
    if (pointwise()) {  // the lowered rows are x's own: their gradient is dx, one GEMM per chunk and group
      const index_t total = s.n * P_ * Q_, chunk = chunk_pixels();
      parallel_for((total + chunk - 1) / chunk, [&](index_t b, index_t e) {
        for (index_t ch = b; ch < e; ++ch) {
          const index_t i0 = ch * chunk, m = std::min(chunk, total - i0);
          const gemm_kernel<Policy, T, T, T> gemm({m, cg_, kg_, dy.ld, w.ld, dx.ld}, gemm_params{1.0f, 0.0f, false, true});
          for (index_t g = 0; g < s.groups; ++g)
            gemm(mat<const T>{dy.row(i0) + g * kg_, m, kg_, dy.ld}, mat<const T>{w.data + g * kg_, cg_, kg_, w.ld},
                 mat<T>{dx.row(i0) + g * cg_, m, cg_, dx.ld});
        }
      });
      return;
    }
    const index_t kk = field(), pq = P_ * Q_, hw = s.h * s.w, chunk = chunk_pixels();
    const index_t images = pq >= chunk ? 1 : chunk / pq, units = (s.n + images - 1) / images;
    const index_t rows = pq >= chunk ? chunk : images * pq;  // most pixels of one GEMM
    parallel_for(units, [&](index_t b, index_t e) {
      scratch frame;
      float* const dcol = frame.take<float>(std::size_t(rows * kk));
      float* const acc = std::is_same_v<T, float> ? nullptr : frame.take<float>(std::size_t(images * hw * s.c));
      for (index_t u = b; u < e; ++u) {
        const index_t n0 = u * images, n1 = std::min(s.n, n0 + images);
        // dx of images [n0, n1), accumulated in fp32: dx itself, or acc for a bf16 dx
        float* img;
        index_t img_ld;
        if constexpr (std::is_same_v<T, float>) {
          img = dx.row(n0 * hw);
          img_ld = dx.ld;
        } else {
          img = acc;
          img_ld = s.c;
        }
        for (index_t i = 0; i < (n1 - n0) * hw; ++i) std::fill_n(img + i * img_ld, s.c, 0.0f);
        for (index_t i0 = n0 * pq; i0 < n1 * pq; i0 += rows) {
          const index_t m = std::min(rows, n1 * pq - i0);
          const gemm_kernel<Policy, T, T, float> gemm({m, kk, kg_, dy.ld, w.ld, kk}, gemm_params{1.0f, 0.0f, false, true});
          for (index_t g = 0; g < s.groups; ++g) {
            gemm(mat<const T>{dy.row(i0) + g * kg_, m, kg_, dy.ld}, mat<const T>{w.data + g * kg_, kk, kg_, w.ld},
                 mat<float>{dcol, m, kk, kk});
            for (index_t i = 0; i < m; ++i) {
              const index_t n = (i0 + i) / pq - n0, p = (i0 + i) / Q_ % P_, q = (i0 + i) % Q_;
              const float* src = dcol + i * kk;
              for (index_t r = 0; r < s.r; ++r) {
                const index_t ih = p * s.stride_h - s.pad_h + r * s.dilation_h;
                if (ih < 0 || ih >= s.h) continue;
                for (index_t t = 0; t < s.s; ++t) {
                  const index_t iw = q * s.stride_w - s.pad_w + t * s.dilation_w;
                  if (iw >= 0 && iw < s.w)
                    add_into(img + ((n * s.h + ih) * s.w + iw) * img_ld + g * cg_, src + (r * s.s + t) * cg_, cg_);
                }
              }
            }
          }
        }
        if constexpr (!std::is_same_v<T, float>)
          for (index_t i = 0; i < (n1 - n0) * hw; ++i) {
            T* out = dx.row(n0 * hw + i);
            const float* in = acc + i * s.c;
            chunks([&](index_t j, index_t len) { lanes::store(out + j, ld(in + j, len), len); });
          }
      }
    });
  }

  // Each part's chunks into its partial dW: lowered rows^T dy (products P(x, dy)), accumulated.
  void lowered_backward_weights(mat<const T> x, mat<const T> dy, mat<T> dw, float* partial, index_t parts) const {
    const index_t kk = field(), total = s_.n * P_ * Q_, chunk = chunk_pixels(), count = (total + chunk - 1) / chunk;
    parallel_for(parts, [&](index_t b, index_t e) {
      scratch frame;
      T* const col = frame.take<T>(std::size_t(chunk * kk));
      for (index_t part = b; part < e; ++part) {
        float* acc = partial + part * kk * s_.k;
        std::fill_n(acc, kk * s_.k, 0.0f);
        const range share = split(count, parts, part);
        for (index_t ch = share.begin; ch < share.end; ++ch) {
          const index_t i0 = ch * chunk, m = std::min(chunk, total - i0);
          for (index_t g = 0; g < s_.groups; ++g) {
            const mat<const T> a = lowered_rows(x, i0, m, g, col);
            const gemm_kernel<Policy, T, T, float> gemm({kk, kg_, m, a.ld, dy.ld, s_.k}, gemm_params{1.0f, 1.0f, true, false});
            gemm(a, mat<const T>{dy.row(i0) + g * kg_, m, kg_, dy.ld}, mat<float>{acc + g * kg_, kk, kg_, s_.k});
          }
        }
      }
    });
    sum_parts(partial, parts, dw);
  }

  // dst[0, n) += src[0, n)
  static void add_into(float* dst, const float* src, index_t n) noexcept {
    if (n < 4) {  // a few channels per group (LeNet's first layer has one): masks cost more than the adds
      for (index_t j = 0; j < n; ++j) dst[j] += src[j];
      return;
    }
    index_t j = 0;
    for (; j + W <= n; j += W) lanes::store(dst + j, lanes::load<V>(dst + j) + lanes::load<V>(src + j));
    if (j < n) lanes::store(dst + j, lanes::load<V>(dst + j, n - j) + lanes::load<V>(src + j, n - j), n - j);
  }

  // ---- pixels: a few input channels (groups 1, stride_w 1), vectors along the output pixels ----
  // (with C <= 8 a GEMM's k is at most R*S*8 and its n is K, often below a vector: here the lanes run
  // over W adjacent output pixels instead, which image n's channel-planar, zero-padded copy holds
  // contiguously for every tap)

  index_t plane_h() const noexcept { return s_.h + 2 * s_.pad_h; }
  index_t plane_w() const noexcept { return s_.w + 2 * s_.pad_w + 2 * W; }  // slack for whole-vector loads
  static index_t padded8(index_t n) noexcept { return (n + 7) / 8 * 8; }
  index_t k_padded() const noexcept { return padded8(s_.k); }

  // A stride-1-along-w convolution over channel-planar fp32 images: `channels` planes of (hp, wp), taps
  // r x s dilated by (dh, dw), weights wk as (r*s*channels, kp) fp32 (zero past the output channels).
  struct planar {
    index_t channels, hp, wp, r, s, dh, dw, kp;
    const float* wk;
    const index_t* offsets = nullptr;  // per tap (r, t, c): (c hp + r dh) wp + t dw, from tap_offsets()
    const float* wk_plain = nullptr;   // packs: the stored weights (wk holds them packed)
    approx::panel_range range{};       // packs: the packed weights' exponents

    index_t taps() const noexcept { return r * s * channels; }
    // One flat loop over the taps keeps a tile's accumulators in registers (nested r, t, c loops spilled
    // them around the c loop: 16 reloads and stores per tap when C is 1).
    void tap_offsets(index_t* out) noexcept {
      for (index_t i = 0; i < r; ++i)
        for (index_t t = 0; t < s; ++t)
          for (index_t c = 0; c < channels; ++c) *out++ = (c * hp + i * dh) * wp + t * dw;
    }
  };

  // out (channels, hp, wp) = image n of m (rows x cols pixels, `channels` columns), channel-planar in fp32
  // at offset (oh, ow), zero elsewhere.
  // With `range`, each value is packed (traits::pack) and its exponent recorded.
  static void planes(mat<const T> m, index_t n, index_t rows, index_t cols, const planar& g, index_t oh, index_t ow,
                     float* out, approx::panel_range* range = nullptr) {
    std::fill_n(out, g.channels * g.hp * g.wp, 0.0f);
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) {
        const T* px = m.row((n * rows + i) * cols + j);
        float* o = out + (i + oh) * g.wp + j + ow;
        for (index_t c = 0; c < g.channels; ++c) {
          float v = to_float(px[c]);
          if constexpr (packs)
            if (range) range->add(v = traits::pack(v));
          o[c * g.hp * g.wp] = v;
        }
      }
  }

  // Image n's planes for a pass whose other operand is g's weights: packed when the products stay in range
  // (A's offset subtracted, zeros included: they become the step's zero marker), else stored. Whether packed.
  static bool operand_planes(mat<const T> m, index_t n, index_t rows, index_t cols, const planar& g, index_t oh,
                             index_t ow, float* out) {
    if constexpr (packs) {
      approx::panel_range r;
      planes(m, n, rows, cols, g, oh, ow, out, &r);
      if (approx::products_in_range<traits>(r, g.range)) {
        if constexpr (traits::a_offset != 0)
          for (index_t i = 0; i < g.channels * g.hp * g.wp; ++i)
            out[i] = approx::detail::from_bits(approx::detail::bits(out[i]) - traits::a_offset);
        return true;
      }
    }
    planes(m, n, rows, cols, g, oh, ow, out);
    return false;
  }

  // wk (rows, kp) = w's (rows, k) values, zero past k; packs: packed too, into wk and range, with the stored
  // ones in plain (rows, kp).
  template <class Get>
  static void weight_panel(index_t rows, index_t k, index_t kp, Get&& get, float* wk, float* plain,
                           approx::panel_range& range) {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < kp; ++j) {
        const float v = j < k ? get(i, j) : 0.0f;
        if constexpr (packs) {
          plain[i * kp + j] = v;
          const float pv = traits::pack(v);
          if (j < k) range.add(pv);
          wk[i * kp + j] = pv;
        } else {
          wk[i * kp + j] = v;
        }
      }
  }

  // out[kk * NQ * W + l] = the sum over (r, t, c) of P(plane value, weight) for output channels
  // [k0, k0 + KB) and the NQ * W output pixels from column q0 of the output row whose first tap row is
  // `top`.
  template <class Step, index_t KB, index_t NQ>
  static void pixels_tile(const float* wk, const planar& g, const float* xp, index_t top, index_t q0, index_t k0,
                          float* out) {
    // (every loop over KB and NQ unrolled, so that -O2 keeps acc in registers as -O3 does)
    V acc[KB][NQ];
#pragma GCC unroll 16
    for (index_t kk = 0; kk < KB; ++kk)
#pragma GCC unroll 4
      for (index_t j = 0; j < NQ; ++j) acc[kk][j] = V(0.0f);
    const float* const x0 = xp + top * g.wp + q0;
    const index_t taps = g.taps();
    for (index_t tap = 0; tap < taps; ++tap) {
      const float* xs = x0 + g.offsets[tap];
      const float* wr = wk + tap * g.kp + k0;
      decltype(approx::step_a_operand<Step>(V())) xv[NQ];
#pragma GCC unroll 4
      for (index_t j = 0; j < NQ; ++j) xv[j] = approx::step_a_operand<Step>(lanes::load<V>(xs + j * W));
#pragma GCC unroll 16
      for (index_t kk = 0; kk < KB; ++kk) {
        const auto wv = approx::step_b_operand<Step>(V(wr[kk]));
#pragma GCC unroll 4
        for (index_t j = 0; j < NQ; ++j) acc[kk][j] = Step::step(acc[kk][j], xv[j], wv);
      }
    }
#pragma GCC unroll 16
    for (index_t kk = 0; kk < KB; ++kk)
#pragma GCC unroll 4
      for (index_t j = 0; j < NQ; ++j) lanes::store(out + (kk * NQ + j) * W, acc[kk][j]);
  }

  // out (images * out_h * out_w, out_ch) = the planar convolution of m's images (in_h x in_w pixels,
  // g.channels each, placed at (oh, ow) in their planes), output row p's first tap row p * stride_h;
  // then the epilogue on each output pixel's row. Parallel over (image, output row).
  template <class Epilogue>
  void pixels_run(mat<const T> m, index_t in_h, index_t in_w, index_t oh, index_t ow, const planar& g, index_t stride_h,
                  mat<T> out, index_t out_h, index_t out_w, index_t out_ch, const Epilogue& ep) const {
    constexpr index_t NQ = 2, QB = NQ * W;  // pixels per tile: two vectors, eight channels a sub-tile
    constexpr bool by_column = epilogue::columnwise<Epilogue>;
    const index_t kt = (g.kp + 15) / 16 * 16;  // channels of a transposed pixel row
    parallel_for(s_.n * out_h, [&](index_t b, index_t e) {
      scratch frame;
      float* const xp = frame.take<float>(std::size_t(g.channels * g.hp * g.wp));
      float* const tile = frame.take<float>(std::size_t(kt * QB));  // (channels, pixels) of one tile
      float* const rows = frame.take<float>(std::size_t(QB * kt));  // (pixels, channels): its transpose
      std::fill_n(tile, kt * QB, 0.0f);
      index_t image = -1;
      bool fast = false;  // this image's planes are packed
      for (index_t np = b; np < e; ++np) {
        const index_t n = np / out_h, p = np % out_h;
        if (n != image) fast = operand_planes(m, image = n, in_h, in_w, g, oh, ow, xp);
        for (index_t q0 = 0; q0 < out_w; q0 += QB) {
          const index_t nq = std::min(QB, out_w - q0);
          for (index_t k0 = 0; k0 < out_ch; k0 += 8) {
            if (fast)
              pixels_tile<packed_step, 8, NQ>(g.wk, g, xp, p * stride_h, q0, k0, tile + k0 * QB);
            else
              pixels_tile<stored_step, 8, NQ>(packs ? g.wk_plain : g.wk, g, xp, p * stride_h, q0, k0, tile + k0 * QB);
          }
          if constexpr (by_column)  // the epilogue on whole vectors of each channel, before the transpose
            for (index_t k = 0; k < out_ch; ++k)
              for (index_t j = 0; j < NQ; ++j) {
                float* t = tile + k * QB + j * W;
                lanes::store(t, ep.column(k, lanes::load<V>(t)));
              }
          if constexpr (QB % 16 == 0) {
            for (index_t k0 = 0; k0 < out_ch; k0 += 16)
              for (index_t l0 = 0; l0 < nq; l0 += 16)
                arch::transpose_block<float, 16>(tile + k0 * QB + l0, QB, rows + l0 * kt + k0, kt);
          } else {
            for (index_t k = 0; k < out_ch; ++k)
              for (index_t l = 0; l < nq; ++l) rows[l * kt + k] = tile[k * QB + l];
          }
          for (index_t l = 0; l < nq; ++l) {
            float* row = rows + l * kt;
            const index_t i = np * out_w + q0 + l;
            if constexpr (!by_column) ep(i, 0, row, out_ch);
            T* o = out.row(i);
            if constexpr (std::is_same_v<T, float>) {
              for (index_t k = 0; k < out_ch; k += W)
                lanes::store(o + k, lanes::load<V>(row + k), std::min(W, out_ch - k));
            } else {
              for (index_t k = 0; k < out_ch; ++k) o[k] = from_float<T>(row[k]);
            }
          }
        }
      }
    });
  }

  template <class Epilogue>
  void pixels_forward(mat<const T> x, mat<const T> w, mat<T> y, const Epilogue& ep) const {
    const conv2d_shape& s = s_;
    scratch shared;
    const index_t kp = k_padded();
    float* const wk = shared.take<float>(std::size_t(w.rows * kp));  // w, zero past K
    float* const plain = packs ? shared.take<float>(std::size_t(w.rows * kp)) : nullptr;
    planar g{s.c, plane_h(), plane_w(), s.r, s.s, s.dilation_h, s.dilation_w, kp, wk};
    weight_panel(w.rows, s.k, kp, [&](index_t i, index_t k) { return to_float(w(i, k)); }, wk, plain, g.range);
    g.wk_plain = plain;
    index_t* const offsets = shared.take<index_t>(std::size_t(g.taps()));
    g.tap_offsets(offsets);
    g.offsets = offsets;
    pixels_run(x, s.h, s.w, s.pad_h, s.pad_w, g, s.stride_h, y, P_, Q_, s.k, ep);
  }

  // Stride 1: dx is the planar convolution of dy (K channels, placed at ((R-1) dh - pad_h, (S-1) dw -
  // pad_w)) with the taps flipped and W transposed, w'(r', t', k)(c) = w(R-1-r', S-1-t', c)(k): products
  // P(dy, w).
  bool pixels_backward_data_applies() const noexcept { return pixels_data_; }
  void pixels_backward_data(mat<const T> dy, mat<const T> w, mat<T> dx) const {
    const conv2d_shape& s = s_;
    const index_t oh = (s.r - 1) * s.dilation_h - s.pad_h, ow = (s.s - 1) * s.dilation_w - s.pad_w, cp = padded8(s.c);
    scratch shared;
    float* const wk = shared.take<float>(std::size_t(s.r * s.s * s.k * cp));
    float* const plain = packs ? shared.take<float>(std::size_t(s.r * s.s * s.k * cp)) : nullptr;
    planar g{s.k, P_ + 2 * oh, Q_ + 2 * ow + 2 * W, s.r, s.s, s.dilation_h, s.dilation_w, cp, wk};
    // row (r', t', k) of the flipped, transposed filter: w(R-1-r', S-1-t', c)(k) over c
    weight_panel(s.r * s.s * s.k, s.c, cp, [&](index_t i, index_t c) {
      const index_t k = i % s.k, rt = i / s.k, r = s.r - 1 - rt / s.s, t = s.s - 1 - rt % s.s;
      return to_float(w((r * s.s + t) * s.c + c, k));
    }, wk, plain, g.range);
    g.wk_plain = plain;
    index_t* const offsets = shared.take<index_t>(std::size_t(g.taps()));
    g.tap_offsets(offsets);
    g.offsets = offsets;
    pixels_run(dy, P_, Q_, oh, ow, g, 1, dx, s.h, s.w, s.c, epilogue::none{});
  }

  // Each part's output rows into its partial dW, image by image: dy's K values as vectors along each output
  // row's pixels (transposed once per image, zero past Q) times each tap's x vector. The accumulators of
  // a block of TB taps x 8 output channels stay in registers over all of the image's rows (they live in
  // memory only between images); reduced across lanes once at the end.
  void pixels_backward_weights(mat<const T> x, mat<const T> dy, mat<T> dw, float* partial, index_t parts) const {
    constexpr index_t TB = 2, KB = 8;  // 16 accumulators, 8 dy vectors, TB x vectors: 26 registers
    const conv2d_shape& s = s_;
    const index_t kp = k_padded(), hp = plane_h(), wp = plane_w(), qp = (Q_ + W - 1) / W * W;
    planar g{s.c, hp, wp, s.r, s.s, s.dilation_h, s.dilation_w, kp, nullptr};
    const index_t taps = g.taps(), tp = (taps + TB - 1) / TB * TB;
    scratch shared;
    index_t* const offsets = shared.take<index_t>(std::size_t(tp));
    g.tap_offsets(offsets);
    std::fill(offsets + taps, offsets + tp, offsets[0]);  // padding taps: summed into rows never read
    parallel_for(parts, [&](index_t b, index_t e) {
      scratch frame;
      float* const xp = frame.take<float>(std::size_t(s.c * hp * wp));
      float* const dyt = frame.take<float>(std::size_t(kp * P_ * qp));  // (K, P, Q) of one image
      V* const acc = frame.take<V>(std::size_t(tp * kp));                 // (taps, K)
      for (index_t part = b; part < e; ++part) {
        std::fill_n(acc, tp * kp, V(0.0f));
        std::fill_n(dyt, kp * P_ * qp, 0.0f);
        const range share = split(s.n * P_, parts, part);
        for (index_t np0 = share.begin; np0 < share.end;) {
          const index_t n = np0 / P_, p0 = np0 % P_, p1 = std::min(P_, p0 + (share.end - np0));
          // dy's rows p0..p1 transposed (packed, with their exponents, where the policy packs), and the
          // image's planes: both packed when their products stay in range, else both stored
          const auto transpose_dy = [&](approx::panel_range* range) {  // with range: packed
            for (index_t p = p0; p < p1; ++p)
              for (index_t q = 0; q < Q_; ++q) {
                const T* d = dy.row((n * P_ + p) * Q_ + q);
                for (index_t k = 0; k < s.k; ++k) {
                  float v = to_float(d[k]);
                  if constexpr (packs)
                    if (range) range->add(v = traits::pack(v));
                  dyt[(k * P_ + p) * qp + q] = v;
                }
              }
          };
          bool fast = false;
          if constexpr (packs) {
            planar gd = g;
            transpose_dy(&gd.range);
            fast = operand_planes(x, n, s.h, s.w, gd, s.pad_h, s.pad_w, xp);
            if (!fast) transpose_dy(nullptr);
          } else {
            planes(x, n, s.h, s.w, g, s.pad_h, s.pad_w, xp);
            transpose_dy(nullptr);
          }
          const auto accumulate = [&]<class Step>(Step) {
            for (index_t k0 = 0; k0 < kp; k0 += KB)
              for (index_t t0 = 0; t0 < tp; t0 += TB) {
                // (every loop over TB and KB unrolled, so that -O2 keeps a and dv in registers as -O3 does)
                V a[TB][KB];
#pragma GCC unroll 2
                for (index_t tb = 0; tb < TB; ++tb)
#pragma GCC unroll 8
                  for (index_t kk = 0; kk < KB; ++kk) a[tb][kk] = acc[(t0 + tb) * kp + k0 + kk];
                for (index_t p = p0; p < p1; ++p) {
                  const float* xrow = xp + p * s.stride_h * wp;
                  const float* drow = dyt + (k0 * P_ + p) * qp;
                  for (index_t q0 = 0; q0 < Q_; q0 += W) {
                    const index_t len = std::min(W, Q_ - q0);
                    decltype(approx::step_b_operand<Step>(V())) dv[KB];
#pragma GCC unroll 8
                    for (index_t kk = 0; kk < KB; ++kk)
                      dv[kk] = approx::step_b_operand<Step>(lanes::load<V>(drow + kk * P_ * qp + q0));
#pragma GCC unroll 2
                    for (index_t tb = 0; tb < TB; ++tb) {
                      // lanes past Q: dy is 0 there; x loads +0 (an Inf x there would make a NaN), or on
                      // the packed path the zero marker that packed planes hold
                      const float* xs = xrow + offsets[t0 + tb] + q0;
                      const auto xv = approx::step_a_operand<Step>(std::is_same_v<Step, stored_step> ? ld(xs, len) : lanes::load<V>(xs));
#pragma GCC unroll 8
                      for (index_t kk = 0; kk < KB; ++kk) a[tb][kk] = Step::step(a[tb][kk], xv, dv[kk]);
                    }
                  }
                }
#pragma GCC unroll 2
                for (index_t tb = 0; tb < TB; ++tb)
#pragma GCC unroll 8
                  for (index_t kk = 0; kk < KB; ++kk) acc[(t0 + tb) * kp + k0 + kk] = a[tb][kk];
              }
          };
          if (fast)
            accumulate(packed_step{});
          else
            accumulate(stored_step{});
          np0 += p1 - p0;
        }
        float* out = partial + part * taps * s.k;
        for (index_t i = 0; i < taps; ++i)
          for (index_t k = 0; k < s.k; ++k) out[i * s.k + k] = lanes::hsum(acc[i * kp + k]);
      }
    });
    sum_parts(partial, parts, dw);
  }

  // The shares of the output rows backward_weights sums separately: one per thread (one inside a caller's
  // parallel region), at most one per row.
  index_t weight_parts() const { return std::max<index_t>(1, std::min<index_t>(in_parallel() ? 1 : max_threads(), s_.n * P_)); }

  // The three tensors of a pass: activations (N*H*W, C), weights (R*S*C/groups, K), outputs (N*P*Q, K).
  enum class tensor { activations, weights, outputs };
  struct arg {
    mat<const T> m;
    std::string_view name;
    tensor t;
  };

  // A pass's views: each valid and of its tensor's shape, the output apart from both inputs (no pass runs
  // in place).
  void check_pass(std::string_view op, const arg& a, const arg& b, const arg& out) const {
    for (const arg* v : {&a, &b, &out}) {
      const bool act = v->t == tensor::activations, wts = v->t == tensor::weights;
      tpp::detail::check_view(v->m, act ? s_.n * s_.h * s_.w : wts ? s_.r * s_.s * cg_ : s_.n * P_ * Q_, act ? s_.c : s_.k,
                              op, v->name, act ? "(n*h*w, c)" : wts ? "(r*s*c/groups, k)" : "(n*p*q, k)");
    }
    for (const arg* in : {&a, &b})
      if (tpp::detail::views_overlap(out.m, in->m)) throw error(op, in->name, detail::concat("overlaps ", out.name));
  }

  conv2d_shape s_;
  index_t P_ = 0, Q_ = 0, cg_ = 0, kg_ = 0;
  bool pixels_data_ = false;  // backward-data runs the pixels nest (stride_h 1, and wide rows unless forced)
  bool lowered_ = false, lowered_weights_ = false, pixels_ = false;
};

}  // namespace tpp::dnn
