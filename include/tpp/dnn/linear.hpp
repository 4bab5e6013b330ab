#pragma once
// dnn::linear: the fully connected layer y = x W (+ bias, activation through an epilogue), forward and both
// backward passes, every product through the policy (DESIGN.md 3b and 7); and dnn::bias_gradient, the
// column sums of an output gradient (a linear layer's or a convolution's db).
//
// Layouts (views): x (batch, in), one row per sample; W (in, out), the (rows, columns) convention of a 1x1
// convolution's HWIO weights; y (batch, out). Any ld >= cols, so a slice of a wider tensor is a view too.
//
// Decomposition: each pass is one GEMM (ops/gemm.hpp), the transposes resolved while packing:
//   forward          y  (batch, out) = x  (batch, in)  W (in, out)      products P(x, w), then the epilogue
//   backward_data    dx (batch, in)  = dy (batch, out) W^T               products P(dy, w)  (B transposed)
//   backward_weights dW (in, out)    = x^T (in, batch) dy (batch, out)   products P(x, dy)  (A transposed)
//                    db (out)        = the column sums of dy              (bias_gradient)
// The GEMM keeps the policy's operand order under either transpose (A's element first), so an asymmetric
// multiplier sees the contract's order in every pass. Sums in fp32; a bf16 output is rounded once.
// OpenMP inside: the GEMM splits a large C over the team by columns (or rows, when C is tall); called from
// inside a parallel region it runs on the calling thread. Scratch (packing buffers, a bf16 output's fp32
// sums) comes from the calling threads' arenas (core/workspace.hpp). Deterministic for a given thread
// count; bias_gradient's sums do not depend on the thread count at all.
//
// Special values: as the GEMM's: the policy's products (NaN and Inf propagate through the sums), beta = 0
// semantics (the outputs' old contents, NaN included, are never read).

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "../approx/exact.hpp"
#include "../approx/policy.hpp"
#include "../core/bf16.hpp"
#include "../core/error.hpp"
#include "../core/mat.hpp"
#include "../core/parallel.hpp"
#include "../core/workspace.hpp"
#include "../ops/epilogue.hpp"
#include "../ops/gemm.hpp"
#include "../ops/reduce.hpp"

namespace tpp::dnn {

struct linear_shape {
  index_t batch = 0, in = 0, out = 0;  // rows of x and y, columns of x (rows of W), columns of y and W
};

// db (dy.cols) = the column sums of dy (rows, cols): a layer's bias gradient. Sums in fp32, blocked pairwise
// (tpp::reduce's each_col, its accuracy bound); OpenMP over blocks of columns, each column summed in the
// same order whatever the thread count (deterministic). db must not overlap dy.
template <class T>
  requires std::same_as<T, float> || std::same_as<T, bf16>
void bias_gradient(mat<const T> dy, std::span<float> db) {
  constexpr std::string_view op = "bias_gradient";
  tpp::detail::check_mat(dy, op, "dy");
  if (index_t(db.size()) != dy.cols)
    throw error(op, "db", tpp::detail::concat("has ", std::to_string(db.size()), " elements but dy has ",
                                              std::to_string(dy.cols), " columns"));
  const mat<float> out{db.data(), 1, dy.cols, dy.cols};
  if (tpp::detail::views_overlap(out, dy)) throw error(op, "db", "overlaps dy");
  if (dy.cols == 0) return;
  // Blocks of 64 columns (whole vectors at every width); parallel only when there is work for a team.
  constexpr index_t block = 64;
  const index_t blocks = (dy.cols + block - 1) / block;
  const index_t parts = dy.rows * dy.cols >= (index_t(1) << 15) ? blocks : 1;
  parallel_for(parts, [&](index_t b, index_t e) {
    const index_t c0 = parts == 1 ? 0 : b * block, c1 = parts == 1 ? dy.cols : std::min(dy.cols, e * block);
    const reduce_kernel<reduce_kind::sum, approx::exact, T, float> sum(dy.rows, c1 - c0, {reduce_dir::each_col, false});
    sum(mat<const T>{dy.data + c0, dy.rows, c1 - c0, dy.ld}, mat<float>{db.data() + c0, 1, c1 - c0, c1 - c0});
  });
}

// Views of mutable elements convert.
template <class T>
  requires std::same_as<T, float> || std::same_as<T, bf16>
void bias_gradient(mat<T> dy, std::span<float> db) {
  bias_gradient(mat<const T>(dy), db);
}

template <class Policy = approx::exact, class T = float>
  requires approx::multiplier<Policy> && (std::same_as<T, float> || std::same_as<T, bf16>)
class linear {
 public:
  static constexpr std::string_view label = "linear";

  // Every field at least 1, and every view size fits index_t; else tpp::error naming the field.
  explicit linear(linear_shape shape) : s_(shape) {
    using field = std::pair<std::string_view, index_t>;
    for (const field& f : {field{"batch", s_.batch}, field{"in", s_.in}, field{"out", s_.out}})
      if (f.second < 1) throw error(label, f.first, tpp::detail::concat("(", std::to_string(f.second), ") must be at least 1"));
    const index_t big = std::numeric_limits<index_t>::max() / 4;
    const auto fits = [&](index_t a, index_t b) {
      index_t p = 0;
      return tpp::detail::checked_mul(a, b, p) && p <= big;
    };
    if (!fits(s_.batch, s_.in)) throw error(label, "batch", "batch * in overflows index_t");
    if (!fits(s_.batch, s_.out)) throw error(label, "batch", "batch * out overflows index_t");
    if (!fits(s_.in, s_.out)) throw error(label, "out", "in * out overflows index_t");
    approx::check_policy<Policy>();
  }

  const linear_shape& shape() const noexcept { return s_; }

  // y (batch, out) = x (batch, in) W (in, out), then the epilogue on each finished stretch of y (with y's
  // own indices: epilogue::bias_per_col{b} adds the bias, chained with an activation for one call).
  template <class Epilogue = epilogue::none>
    requires epilogue::callable<Epilogue>
  void forward(mat<const T> x, mat<const T> w, mat<T> y, const Epilogue& ep = {}) const {
    constexpr std::string_view op = "linear::forward";
    check(op, {x, "x", s_.batch, s_.in, "(batch, in)"}, {w, "w", s_.in, s_.out, "(in, out)"},
          {y, "y", s_.batch, s_.out, "(batch, out)"});
    tpp::gemm<Policy>(x, w, y, gemm_params{}, ep);
  }

  // dx (batch, in) = dy (batch, out) W^T, products P(dy, w); overwritten.
  void backward_data(mat<const T> dy, mat<const T> w, mat<T> dx) const {
    constexpr std::string_view op = "linear::backward_data";
    check(op, {dy, "dy", s_.batch, s_.out, "(batch, out)"}, {w, "w", s_.in, s_.out, "(in, out)"},
          {dx, "dx", s_.batch, s_.in, "(batch, in)"});
    tpp::gemm<Policy>(dy, w, dx, gemm_params{1.0f, 0.0f, false, true});
  }

  // dw (in, out) = x^T dy, products P(x, dy); overwritten. db, when not empty: out floats, the column sums
  // of dy (bias_gradient).
  void backward_weights(mat<const T> x, mat<const T> dy, mat<T> dw, std::span<float> db = {}) const {
    constexpr std::string_view op = "linear::backward_weights";
    check(op, {x, "x", s_.batch, s_.in, "(batch, in)"}, {dy, "dy", s_.batch, s_.out, "(batch, out)"},
          {dw, "dw", s_.in, s_.out, "(in, out)"});
    if (!db.empty()) {
      if (index_t(db.size()) != s_.out)
        throw error(op, "db", tpp::detail::concat("has ", std::to_string(db.size()), " elements but out is ",
                                                  std::to_string(s_.out)));
      const mat<const float> b{db.data(), 1, s_.out, s_.out};
      if (tpp::detail::views_overlap(b, x)) throw error(op, "x", "overlaps db");
      if (tpp::detail::views_overlap(b, dy)) throw error(op, "dy", "overlaps db");
      if (tpp::detail::views_overlap(b, dw)) throw error(op, "db", "overlaps dw");
    }
    tpp::gemm<Policy>(x, dy, dw, gemm_params{1.0f, 0.0f, true, false});
    if (!db.empty()) bias_gradient(dy, db);
  }

 private:
  struct arg {
    mat<const T> m;
    std::string_view name;
    index_t rows, cols;
    std::string_view shape;
  };

  // A pass's views: each valid and of its shape, the output apart from both inputs (no pass runs in place).
  static void check(std::string_view op, const arg& a, const arg& b, const arg& out) {
    for (const arg* v : {&a, &b, &out}) tpp::detail::check_view(v->m, v->rows, v->cols, op, v->name, v->shape);
    for (const arg* in : {&a, &b})
      if (tpp::detail::views_overlap(out.m, in->m)) throw error(op, in->name, tpp::detail::concat("overlaps ", out.name));
  }

  linear_shape s_;
};

}  // namespace tpp::dnn
