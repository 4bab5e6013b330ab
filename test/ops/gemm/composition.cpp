// Composed GEMMs whose buffers live at the same time (core/workspace.hpp): a GEMM whose epilogue runs
// another GEMM on each finished stretch of C (the same kernel object, the same shape and policy, or other
// shapes, policies, paths and C types; single-threaded and split over the OpenMP team; the default arena
// and caller-provided workspaces), each checked against a reference computed separately:
//
//   C = alpha sum_q P1(A(i, q), B(q, j)) + beta C0 + sum_q P2(U(i, q), V(q, j))
//
// (the epilogue adds the second sum to its stretch: the result does not depend on how C is cut into
// stretches).
//
// Why this fails with the numbered slots this replaced (thread_scratch<1>, <2> for packed A and B, <3> for a
// bf16 C's fp32 region, <5> for the product tables, all per thread): the epilogue runs on each finished
// tile, after the last K slice, while the outer GEMM still has tiles of the same block to compute from its
// packed panels. The inner GEMM runs on the same thread and packs its own B into slot 2 (and its A's edge
// sliver into slot 1), over the outer's B panel (or, on the table path, over the outer's packed A pairs):
// every later tile of the outer block then multiplies the inner's operands, so C is wrong from the second
// tile on; an inner GEMM with larger panels even reallocates the slot and leaves the outer reading freed
// memory. The same kernel object in its own epilogue takes the very same slots. With a bf16 C, the outer
// keeps its fp32 result in slot 3 while its epilogue runs row by row, and an inner bf16-C GEMM computes
// into the start of that same slot: row 0 then holds the inner's sums instead of the outer's. Frames
// (scratch) give each call its own regions above the enclosing call's, so every case below holds. (Checked
// once against the tree before frames: the gemm() cases below, whose API did not change, all fail there,
// from the outer's second row tile on, and the one whose inner panels are larger crashes.)

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;
using test::make;

// A (m, k1), B (k1, n) for the outer GEMM, U (m, k2), V (k2, n) for the inner one; dense, no transposes.
struct problem {
  index_t m, n, k1, k2;
  std::vector<float> a, b, u, v;
  problem(index_t m_, index_t n_, index_t k1_, index_t k2_, std::uint64_t seed)
      : m(m_), n(n_), k1(k1_), k2(k2_), a(make<float>(std::size_t(m * k1), seed)),
        b(make<float>(std::size_t(k1 * n), seed + 1)), u(make<float>(std::size_t(m * k2), seed + 2)),
        v(make<float>(std::size_t(k2 * n), seed + 3)) {}
  mat<const float> A() const { return {a.data(), m, k1, k1}; }
  mat<const float> B() const { return {b.data(), k1, n, n}; }
  mat<const float> U() const { return {u.data(), m, k2, k2}; }
  mat<const float> V() const { return {v.data(), k2, n, n}; }
  // Row i of U and columns [j, j + len) of V: the inner GEMM of one stretch.
  mat<const float> u_row(index_t i) const { return {u.data() + i * k2, 1, k2, k2}; }
  mat<const float> v_cols(index_t j, index_t len) const { return {v.data() + j, k2, len, n}; }
};

// The epilogue: row += U(i, :) V(:, j..j+len) through gemm<P2>, straight into the stretch (beta = 1).
template <class P2>
struct add_inner_gemm {
  const problem* x;
  void operator()(index_t i, index_t j, float* row, index_t len) const {
    gemm<P2>(x->u_row(i), x->v_cols(j, len), mat<float>{row, 1, len, len}, {1.0f, 1.0f});
  }
};

// The same through a bf16 C of the inner GEMM's own, then added in fp32.
template <class P2>
struct add_inner_bf16_gemm {
  const problem* x;
  void operator()(index_t i, index_t j, float* row, index_t len) const {
    std::vector<bf16> t(static_cast<std::size_t>(len));
    gemm<P2>(x->u_row(i), x->v_cols(j, len), view(t.data(), 1, len));
    for (index_t q = 0; q < len; ++q) row[q] += to_float(t[std::size_t(q)]);
  }
};

// Elements of C that differ from the formula at the top beyond the fp32 accumulation bound of both sums
// (gamma_{k1 + k2 + 4} of the absolute terms), plus 2^-8 of the inner sum when it was rounded to bf16 and
// 2^-8 of the result for a bf16 C.
template <class P1, class P2, class TC>
std::size_t composed_mismatches(const problem& x, const gemm_params& p, const std::vector<TC>& c0,
                                const std::vector<TC>& c, bool inner_bf16) {
  const double u = 0x1p-24, kk = double(x.k1 + x.k2 + 4), g = kk * u / (1 - kk * u);
  const mat<const float> A = x.A(), B = x.B(), U = x.U(), V = x.V();
  std::size_t bad = 0;
  for (index_t i = 0; i < x.m; ++i)
    for (index_t j = 0; j < x.n; ++j) {
      double outer = 0, outer_abs = 0, inner = 0, inner_abs = 0;
      for (index_t q = 0; q < x.k1; ++q) {
        const double t = P1::mul(A(i, q), B(q, j));
        outer += t;
        outer_abs += std::abs(t);
      }
      for (index_t q = 0; q < x.k2; ++q) {
        const double t = P2::mul(U(i, q), V(q, j));
        inner += t;
        inner_abs += std::abs(t);
      }
      const double old = p.beta != 0 ? double(to_float(c0[std::size_t(i * x.n + j)])) : 0.0;
      const double ref = double(p.alpha) * outer + double(p.beta) * old + inner;
      double tol = g * (std::abs(double(p.alpha)) * outer_abs + std::abs(double(p.beta) * old) + inner_abs);
      if (inner_bf16) tol += 0x1p-8 * inner_abs;
      if (std::is_same_v<TC, bf16>) tol += 0x1p-8 * (std::abs(ref) + tol);
      const double got = to_float(c[std::size_t(i * x.n + j)]);
      if (!(std::abs(got - ref) <= tol + 1e-30) && bad++ < 3)
        MESSAGE(P1::name(), " then ", P2::name(), " m=", x.m, " n=", x.n, " (", i, ",", j, ") got ", got, " ref ",
                ref, " tol ", tol);
    }
  return bad;
}

// gemm() whose epilogue runs gemm<P2> on each stretch.
template <class P1, class P2, class TC = float>
void check_gemm_in_epilogue(index_t m, index_t n, index_t k1, index_t k2, bool inner_bf16, std::uint64_t seed) {
  const problem x(m, n, k1, k2, seed);
  const gemm_params p{0.75f, 0.5f};
  const auto c0 = make<TC>(std::size_t(m * n), seed + 4);
  auto c = c0;
  if (inner_bf16)
    gemm<P1>(x.A(), x.B(), view(c.data(), m, n), p, add_inner_bf16_gemm<P2>{&x});
  else
    gemm<P1>(x.A(), x.B(), view(c.data(), m, n), p, add_inner_gemm<P2>{&x});
  CHECK(composed_mismatches<P1, P2>(x, p, c0, c, inner_bf16) == 0);
}

}  // namespace

TEST_CASE("composition: gemm() whose epilogue runs another gemm(), the same and other policies, paths and shapes") {
  // Several row tiles and column slivers per block, K across two slices: the outer's later tiles read its
  // packed panels after the inner GEMM has run.
  check_gemm_in_epilogue<approx::exact, approx::exact>(40, 50, 300, 7, false, 100);         // same policy
  check_gemm_in_epilogue<approx::exact, approx::exact>(40, 50, 300, 300, false, 110);       // same shape of K
  check_gemm_in_epilogue<approx::mitchell<7>, approx::lut<approx::exact_model, 4>>(40, 50, 300, 20, false, 120);
  check_gemm_in_epilogue<approx::lut<approx::exact_model, 4>, approx::exact>(40, 50, 70, 9, false, 130);
  check_gemm_in_epilogue<approx::drum<6>, approx::mbm<7>>(33, 70, 40, 600, false, 140);  // inner panels larger
  check_gemm_in_epilogue<approx::bf16_rne, approx::drum<6>>(29, 45, 17, 11, false, 150);
}

TEST_CASE("composition: bf16 C, the inner GEMM with a bf16 C of its own") {
  check_gemm_in_epilogue<approx::exact, approx::bf16_rne, bf16>(40, 50, 30, 13, true, 200);
  check_gemm_in_epilogue<approx::mitchell<7>, approx::exact, bf16>(40, 50, 300, 300, true, 210);
  check_gemm_in_epilogue<approx::exact, approx::exact, float>(40, 50, 30, 13, true, 220);
}

TEST_CASE("composition: a threaded gemm() whose epilogue runs gemm() on every thread") {
  // (300, 260, 64) is split over the team (OMP_NUM_THREADS = 2 in the checks); each thread's epilogue runs
  // its inner GEMMs above its own frame.
  check_gemm_in_epilogue<approx::exact, approx::drum<6>>(300, 260, 64, 5, false, 300);
  check_gemm_in_epilogue<approx::mitchell<7>, approx::exact, bf16>(260, 300, 64, 40, true, 310);
}

TEST_CASE_TEMPLATE("composition: a gemm_kernel in its own epilogue, or in another's of the same shape and policy; "
                   "arena and caller workspaces",
                   P, approx::exact, approx::mbm<7>, approx::lut<approx::exact_model, 4>) {
  // Every stretch recomputes the whole D = U V (the same shape as A B) and adds its part: many inner calls.
  const index_t m = 30, n = 40, k = 40;
  const problem x(m, n, k, k, 400);
  const gemm_params p{1.0f, 0.5f};
  const gemm_kernel<P> outer({m, n, k}, p), same({m, n, k});
  std::vector<float> d(std::size_t(m * n));
  const auto c0 = make<float>(std::size_t(m * n), 401);
  for (int mode = 0; mode < 3; ++mode) {  // 0: arena / arena, 1: caller / arena, 2: caller / caller
    CAPTURE(mode);
    std::vector<std::byte> ws_outer(outer.workspace_bytes()), ws_inner(same.workspace_bytes());
    const workspace outer_ws = mode >= 1 ? workspace{ws_outer.data(), ws_outer.size()} : workspace{};
    const workspace inner_ws = mode == 2 ? workspace{ws_inner.data(), ws_inner.size()} : workspace{};
    auto add_d = [&](index_t i, index_t j, float* row, index_t len) {
      same(x.U(), x.V(), view(d.data(), m, n), {}, inner_ws);
      for (index_t q = 0; q < len; ++q) row[q] += d[std::size_t(i * n + j + q)];
    };
    auto c = c0;
    outer(x.A(), x.B(), view(c.data(), m, n), add_d, outer_ws);
    CHECK(composed_mismatches<P, P>(x, p, c0, c, false) == 0);
    c = c0;
    same(x.A(), x.B(), view(c.data(), m, n), add_d, outer_ws);  // the very same object, inside its own call
    CHECK(composed_mismatches<P, P>(x, gemm_params{}, c0, c, false) == 0);
  }
}

TEST_CASE("composition: brgemm_kernel (bf16 C) whose epilogue runs a gemm_kernel of another shape in a caller "
          "workspace") {
  const index_t m = 40, n = 50, k = 30, count = 3, k2 = 70;
  const problem x(m, n, k * count, k2, 500);  // A_i = columns [i k, (i + 1) k) of A, B_i = rows of B
  const brgemm_kernel<approx::mitchell<7>, float, float, bf16> br({m, n, k, k * count, n, n}, {1.0f, 0.5f});
  const gemm_kernel<approx::exact> inner({1, n, k2, k2, n, n});
  std::vector<std::byte> ws_outer(br.workspace_bytes() + 7), ws_inner(inner.workspace_bytes());
  std::vector<float> row_c(static_cast<std::size_t>(n));
  auto ep = [&](index_t i, index_t j, float* row, index_t len) {
    // the inner kernel is made for whole rows: compute row i of U V, then add the stretch
    inner(x.u_row(i), x.V(), view(row_c.data(), 1, n), {}, workspace{ws_inner.data(), ws_inner.size()});
    for (index_t q = 0; q < len; ++q) row[q] += row_c[std::size_t(j + q)];
  };
  const auto c0 = make<bf16>(std::size_t(m * n), 501);
  auto c = c0;
  br.by_stride(mat<const float>{x.a.data(), m, k, k * count}, k, mat<const float>{x.b.data(), k, n, n}, k * n, count,
               view(c.data(), m, n), ep, workspace{ws_outer.data() + 7, ws_outer.size() - 7});
  CHECK(composed_mismatches<approx::mitchell<7>, approx::exact>(x, {1.0f, 0.5f}, c0, c, false) == 0);
}
