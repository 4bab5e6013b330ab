#pragma once
// What every GEMM entry point takes and checks (ops/gemm.hpp is the interface): gemm_params, gemm_shape
// (a kernel object's sizes and leading dimensions), the element types, and the argument checks that name
// the argument at fault.

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "../../core/bf16.hpp"
#include "../../core/error.hpp"
#include "../../core/mat.hpp"

namespace tpp {

// C = alpha op(A) op(B) + beta C: the parameters every GEMM entry point takes.
struct gemm_params {
  float alpha = 1.0f, beta = 0.0f;
  bool trans_a = false, trans_b = false;
};

// The sizes of a GEMM for a kernel object: op(A) (m, k), op(B) (k, n), C (m, n); leading dimensions of
// the stored matrices in elements, 0 meaning dense (the stored matrix's column count).
struct gemm_shape {
  index_t m = 0, n = 0, k = 0;
  index_t lda = 0, ldb = 0, ldc = 0;
};

namespace detail {

template <class T>
concept gemm_element = std::is_same_v<std::remove_const_t<T>, float> || std::is_same_v<std::remove_const_t<T>, bf16>;

// The operand pairs of a GEMM or batch-reduce GEMM: operands(i) returns {A_i, B_i} as views of the stored
// matrices, for i < count (a plain GEMM has count 1). All A_i share one shape, all B_i another.
template <class TA, class TB>
struct operand_pair {
  mat<const TA> a;
  mat<const TB> b;
};

// op(A), op(B) and C chain, or throw naming the argument that does not fit.
template <class TA, class TB, class TC>
void check_gemm_shapes(std::string_view op, const mat<TA>& A, const mat<TB>& B, const mat<TC>& C,
                       const gemm_params& p) {
  const index_t m = C.rows, n = C.cols;
  const index_t am = p.trans_a ? A.cols : A.rows, k = p.trans_a ? A.rows : A.cols;
  const index_t bk = p.trans_b ? B.cols : B.rows, bn = p.trans_b ? B.rows : B.cols;
  if (am != m || bk != k || bn != n) [[unlikely]] {
    using std::to_string;
    const std::string a = concat("op(A) is (", to_string(am), "x", to_string(k), ")");
    const std::string b = concat("op(B) is (", to_string(bk), "x", to_string(bn), ")");
    if (am != m) throw error(op, "A", concat(a, " but C has ", to_string(m), " rows"));
    if (bk != k) throw error(op, "B", concat(b, " but ", a));
    throw error(op, "B", concat(b, " but C has ", to_string(n), " columns"));
  }
}

inline void check_gemm_params(std::string_view op, const gemm_params& p) {
  if (!std::isfinite(p.alpha)) throw error(op, "alpha", concat("(", std::to_string(p.alpha), ") is not finite"));
  if (!std::isfinite(p.beta)) throw error(op, "beta", concat("(", std::to_string(p.beta), ") is not finite"));
}

// The checks of the integer GEMMs: valid views that chain, alpha 1, beta 0 or 1, C apart from A and B.
template <class TA, class TB>
void check_int_gemm(std::string_view op, const mat<TA>& A, const mat<TB>& B, const mat<std::int32_t>& C,
                    const gemm_params& p) {
  check_mat(A, op, "A");
  check_mat(B, op, "B");
  check_mat(C, op, "C");
  check_gemm_shapes(op, A, B, C, p);
  if (p.alpha != 1.0f) throw error(op, "alpha", concat("(", std::to_string(p.alpha), ") must be 1 for an integer GEMM"));
  if (p.beta != 0.0f && p.beta != 1.0f)
    throw error(op, "beta", concat("(", std::to_string(p.beta), ") must be 0 or 1 for an integer GEMM"));
  if (views_overlap(C, A)) throw error(op, "C", "overlaps A");
  if (views_overlap(C, B)) throw error(op, "C", "overlaps B");
}

// A kernel object's validated shape with the leading dimensions resolved (gemm_kernel, brgemm_kernel), and
// the check that a call's views are what it was made for.
struct gemm_layout {
  gemm_shape s;
  gemm_params p;
  index_t a_rows, a_cols, b_rows, b_cols;  // the stored A and B

  gemm_layout(std::string_view op, gemm_shape shape, const gemm_params& params) : s(shape), p(params) {
    check_sizes(op, s.m, s.n, "m", "n");
    check_sizes(op, s.k, 0, "k");
    check_gemm_params(op, p);
    a_rows = p.trans_a ? s.k : s.m;
    a_cols = p.trans_a ? s.m : s.k;
    b_rows = p.trans_b ? s.n : s.k;
    b_cols = p.trans_b ? s.k : s.n;
    resolve(op, s.lda, a_cols, "lda");
    resolve(op, s.ldb, b_cols, "ldb");
    resolve(op, s.ldc, s.n, "ldc");
    // the extents must fit index_t (check_mat on a probe view with a non-null pointer)
    static const char probe = 0;
    check_mat(mat<const char>{&probe, a_rows, a_cols, s.lda}, op, "A");
    check_mat(mat<const char>{&probe, b_rows, b_cols, s.ldb}, op, "B");
    check_mat(mat<const char>{&probe, s.m, s.n, s.ldc}, op, "C");
  }

  static void resolve(std::string_view op, index_t& ld, index_t cols, std::string_view name) {
    if (ld == 0) ld = cols;
    if (ld < cols)
      throw error(op, name, concat("(", std::to_string(ld), ") is smaller than the stored matrix's ",
                                   std::to_string(cols), " columns"));
  }

  // x is a valid view of rows x cols, ld apart, or throw naming it.
  template <class T>
  static void check_view(std::string_view op, std::string_view name, const mat<T>& x, index_t rows, index_t cols,
                         index_t ld) {
    check_mat(x, op, name);
    if (x.rows != rows || x.cols != cols || x.ld != ld) [[unlikely]] {
      using std::to_string;
      throw error(op, name,
                  concat("is (", to_string(x.rows), "x", to_string(x.cols), ", ld ", to_string(x.ld),
                         ") but the kernel was made for (", to_string(rows), "x", to_string(cols), ", ld ",
                         to_string(ld), ")"));
    }
  }
  template <class T>
  void check_a(std::string_view op, std::string_view name, const mat<T>& a) const {
    check_view(op, name, a, a_rows, a_cols, s.lda);
  }
  template <class T>
  void check_b(std::string_view op, std::string_view name, const mat<T>& b) const {
    check_view(op, name, b, b_rows, b_cols, s.ldb);
  }
  template <class T>
  void check_c(std::string_view op, std::string_view name, const mat<T>& c) const {
    check_view(op, name, c, s.m, s.n, s.ldc);
  }

  template <class T>
  mat<const T> a_view(const T* a) const noexcept {
    return {a, a_rows, a_cols, s.lda};
  }
  template <class T>
  mat<const T> b_view(const T* b) const noexcept {
    return {b, b_rows, b_cols, s.ldb};
  }
};

}  // namespace detail
}  // namespace tpp
