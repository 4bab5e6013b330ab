// ops/reduce.hpp: every op in both directions against a double-precision reference, with the tolerance
// the header documents (γ_d Σ|t|, d = 24 + ceil(log2 n)); max/min/absmax exact; the squares through every
// registered policy; named shapes around the vector width, padded views with NaN sentinels, bf16 in and
// out, accumulate, special values, large-n accuracy, bad arguments.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/reduce.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
using test::bits;

constexpr index_t W = simd::width<>;
const float qnan = std::numeric_limits<float>::quiet_NaN();
const float inf = std::numeric_limits<float>::infinity();

// Sizes around the vector width and the blocking (leaves of 16 rows / 64 W elements).
std::vector<index_t> edge_sizes() { return {1, W - 1, W, W + 1, 2 * W + 3, 17, 67}; }

double gamma(index_t d) {
  const double du = double(d) * test::u_fp32;
  return du / (1.0 - du);
}

// The documented depth, +1 for a product the compiler may fuse into the add (exact policy).
index_t depth(index_t n) {
  index_t l = 0;
  while ((index_t(1) << l) < n) ++l;
  return 24 + l + 1;
}

template <class T>
T from_f(float f) {
  return from_float<T>(f);
}

// A padded matrix of TI: (rows, cols) with ld, padding filled with NaN (must never reach a result).
template <class TI>
struct padded {
  std::vector<TI> buf;
  index_t rows, cols, ld;
  padded(const std::vector<float>& v, index_t r, index_t c, index_t ld_) : buf(std::size_t(std::max<index_t>(r * ld_, 1)), from_f<TI>(qnan)), rows(r), cols(c), ld(ld_) {
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) buf[std::size_t(i * ld + j)] = from_f<TI>(v[std::size_t(i * c + j)]);
  }
  float at(index_t i, index_t j) const { return to_float(buf[std::size_t(i * ld + j)]); }
  mat<const TI> cview() const { return {buf.data(), rows, cols, ld}; }
  mat<TI> view() { return {buf.data(), rows, cols, ld}; }
};

// Reference of op over the terms (already in fp32), plus Σ|t| for the bound.
struct ref_result {
  double value[2];
  double abs_sum[2];
  index_t n;
};

template <class P>
ref_result reference(const std::vector<float>& x, reduce_op op) {
  ref_result r{{0, 0}, {0, 0}, index_t(x.size())};
  switch (op) {
    case reduce_op::sum:
    case reduce_op::sum_sq:
    case reduce_op::sum_and_sum_sq:
      for (float v : x) {
        const double s = op == reduce_op::sum_sq ? double(P::mul(v, v)) : double(v);
        r.value[0] += s;
        r.abs_sum[0] += std::fabs(s);
        if (op == reduce_op::sum_and_sum_sq) {
          const double q = double(P::mul(v, v));
          r.value[1] += q;
          r.abs_sum[1] += std::fabs(q);
        }
      }
      break;
    case reduce_op::max:
      r.value[0] = -INFINITY;
      for (float v : x) r.value[0] = std::isnan(v) || std::isnan(r.value[0]) ? NAN : std::max(r.value[0], double(v));
      break;
    case reduce_op::min:
      r.value[0] = INFINITY;
      for (float v : x) r.value[0] = std::isnan(v) || std::isnan(r.value[0]) ? NAN : std::min(r.value[0], double(v));
      break;
    case reduce_op::absmax:
      r.value[0] = 0;
      for (float v : x) r.value[0] = std::isnan(v) || std::isnan(r.value[0]) ? NAN : std::max(r.value[0], std::fabs(double(v)));
      break;
  }
  return r;
}

bool additive(reduce_op op) { return op == reduce_op::sum || op == reduce_op::sum_sq || op == reduce_op::sum_and_sum_sq; }

// Combines an old out value into a reference (accumulate).
void add_old(ref_result& r, int k, reduce_op op, float old) {
  if (additive(op)) {
    r.value[k] += old;
    r.abs_sum[k] += std::fabs(old);
    ++r.n;
  } else if (std::isnan(old) || std::isnan(r.value[k])) {
    r.value[k] = NAN;
  } else {
    r.value[k] = op == reduce_op::min ? std::min(r.value[k], double(old)) : std::max(r.value[k], double(old));
  }
}

template <class TO>
void check_value(float got, const ref_result& r, int k, reduce_op op) {
  if (!additive(op)) {
    if (std::isnan(r.value[k])) {
      CHECK(bits(got) == 0x7fc00000u);
    } else {
      CHECK(got == to_float(from_f<TO>(float(r.value[k]))));  // exact, then rounded once to TO
    }
    return;
  }
  double tol = gamma(depth(r.n)) * r.abs_sum[k];
  if (std::is_same_v<TO, bf16>) tol += test::u_bf16 * (std::fabs(r.value[k]) + tol);
  CHECK(std::fabs(double(got) - r.value[k]) <= tol);
}

// Runs one case and checks every output element and the output padding.
template <class P, class TI, class TO>
void check_case(index_t M, index_t N, reduce_op op, reduce_dir dir, bool accumulate, std::uint64_t seed,
                float lo = -2.0f, float hi = 2.0f, index_t pad = 3) {
  CAPTURE(M);
  CAPTURE(N);
  CAPTURE(int(op));
  CAPTURE(int(dir));
  CAPTURE(accumulate);
  const std::vector<float> v = test::uniform(std::size_t(M * N), lo, hi, seed);
  padded<TI> in(v, M, N, N + pad);
  const int K = op == reduce_op::sum_and_sum_sq ? 2 : 1;
  const bool rows = dir == reduce_dir::each_row;
  const index_t len = rows ? M : N;  // output elements
  const index_t ldo = rows ? 2 : N;  // each_row: an (M, 1) view with ld 2
  const float sentinel = 12345.0f;
  std::vector<TO> outbuf[2];
  const std::vector<float> olds = test::uniform(std::size_t(len), -1.0f, 1.0f, seed + 99);
  for (int k = 0; k < K; ++k) {
    outbuf[k].assign(std::size_t(rows ? M * ldo + 2 : N + 8), from_f<TO>(sentinel));
    for (index_t i = 0; i < len; ++i)
      outbuf[k][std::size_t(rows ? i * ldo : i)] = from_f<TO>(accumulate ? olds[std::size_t(i)] + float(k) : -7.0f);
  }
  mat<TO> out[2];
  for (int k = 0; k < K; ++k) out[k] = rows ? mat<TO>{outbuf[k].data(), M, 1, ldo} : mat<TO>{outbuf[k].data(), 1, N, N};
  const reduce_params p{dir, accumulate};
  if (K == 2)
    reduce_sum_and_sum_sq<P>(in.view(), out[0], out[1], p);
  else
    reduce<P>(in.cview(), out[0], op, p);
  for (index_t o = 0; o < len; ++o) {
    std::vector<float> terms;
    for (index_t t = 0; t < (rows ? N : M); ++t) terms.push_back(rows ? in.at(o, t) : in.at(t, o));
    ref_result r = reference<P>(terms, op);
    for (int k = 0; k < K; ++k) {
      if (accumulate) add_old(r, k, op, to_float(from_f<TO>(olds[std::size_t(o)] + float(k))));
      CAPTURE(o);
      check_value<TO>(to_float(outbuf[k][std::size_t(rows ? o * ldo : o)]), r, k, op);
    }
  }
  // Nothing written outside the output view.
  for (int k = 0; k < K; ++k) {
    std::size_t bad = 0;
    for (std::size_t i = 0; i < outbuf[k].size(); ++i) {
      const bool inside = rows ? (i % std::size_t(ldo) == 0 && index_t(i) < M * ldo) : index_t(i) < N;
      if (!inside && bits(to_float(outbuf[k][i])) != bits(to_float(from_f<TO>(sentinel)))) ++bad;
    }
    CHECK(bad == 0);
  }
}

const reduce_op all_ops[] = {reduce_op::sum, reduce_op::max, reduce_op::min, reduce_op::absmax, reduce_op::sum_sq,
                             reduce_op::sum_and_sum_sq};
const reduce_dir both_dirs[] = {reduce_dir::each_row, reduce_dir::each_col};

}  // namespace

TEST_CASE("reduce: every op and direction on edge shapes (fp32, padded ld with NaN sentinels)") {
  std::uint64_t seed = 1;
  for (reduce_op op : all_ops)
    for (reduce_dir dir : both_dirs)
      for (index_t M : edge_sizes())
        for (index_t N : edge_sizes()) check_case<approx::exact, float, float>(M, N, op, dir, false, seed++);
}

TEST_CASE("reduce: 1x1, long rows and tall columns (several leaves)") {
  std::uint64_t seed = 500;
  for (reduce_op op : all_ops)
    for (reduce_dir dir : both_dirs) {
      check_case<approx::exact, float, float>(1, 1, op, dir, false, seed++);
      check_case<approx::exact, float, float>(3, 64 * W * 3 + 5, op, dir, false, seed++);  // 3+ row leaves
      check_case<approx::exact, float, float>(16 * 9 + 3, 5, op, dir, false, seed++);      // 10 column leaves
      check_case<approx::exact, float, float>(40, 2048 + W + 1, op, dir, false, seed++);   // two column chunks
    }
}

TEST_CASE("reduce: bf16 in, bf16 out, accumulate") {
  std::uint64_t seed = 1000;
  for (reduce_op op : all_ops)
    for (reduce_dir dir : both_dirs)
      for (index_t M : {index_t(1), W + 1, index_t(35)})
        for (index_t N : {index_t(1), W - 1, 2 * W + 3, index_t(67)}) {
          check_case<approx::exact, bf16, float>(M, N, op, dir, false, seed++);
          check_case<approx::exact, float, bf16>(M, N, op, dir, false, seed++);
          check_case<approx::exact, bf16, bf16>(M, N, op, dir, true, seed++);
          check_case<approx::exact, float, float>(M, N, op, dir, true, seed++);
        }
}

TEST_CASE_TEMPLATE_DEFINE("reduce: squares go through the policy", P, reduce_policy_sweep) {
  std::uint64_t seed = 2000;
  for (reduce_op op : {reduce_op::sum_sq, reduce_op::sum_and_sum_sq})
    for (reduce_dir dir : both_dirs) {
      for (index_t M : {index_t(1), W - 1, index_t(67)})
        for (index_t N : {index_t(1), W + 1, 2 * W + 3}) check_case<P, float, float>(M, N, op, dir, false, seed++);
      check_case<P, bf16, bf16>(20, 2 * W + 1, op, dir, true, seed++);
      check_case<P, float, float>(2, 64 * W + 7, op, dir, false, seed++, 1e-3f, 1e3f);
    }

  // One term: the result is Policy::mul(x, x) bit for bit, in the vector body and in the tails.
  const index_t N = 3 * W + 2;
  std::vector<float> x = test::uniform(std::size_t(N), -3.0f, 3.0f, 7);
  x[0] = 0.0f;
  x[1] = std::numeric_limits<float>::denorm_min();
  x[2] = 1e30f;
  x[3] = 1e-30f;
  std::vector<float> col(static_cast<std::size_t>(N)), row(col), s(col);
  reduce<P>(view(x.data(), 1, N), view(col.data(), 1, N), reduce_op::sum_sq, {reduce_dir::each_col});
  reduce<P>(view(x.data(), N, 1), view(row.data(), N, 1), reduce_op::sum_sq, {reduce_dir::each_row});
  reduce_sum_and_sum_sq<P>(view(x.data(), 1, N), view(s.data(), 1, N), view(col.data(), 1, N), {reduce_dir::each_col});
  std::size_t bad = 0;
  for (index_t j = 0; j < N; ++j) {
    const float want = P::mul(x[std::size_t(j)], x[std::size_t(j)]);
    bad += bits(col[std::size_t(j)]) != bits(want) || bits(row[std::size_t(j)]) != bits(want) ||
           bits(s[std::size_t(j)]) != bits(x[std::size_t(j)]);
  }
  INFO(P::name());
  CHECK(bad == 0);
}
TEST_CASE_TEMPLATE_APPLY(reduce_policy_sweep, tpp::approx::float_policy_tuple);

TEST_CASE("reduce: large-n accuracy is pairwise, not sequential") {
  // 2^22 terms in [1, 2): a sequential fp32 sum errs by ~1e-5 relative; the documented bound is ~2.8e-6.
  const index_t n = index_t(1) << 22;
  const std::vector<float> x = test::uniform(std::size_t(n), 1.0f, 2.0f, 31);
  double ref = 0, ref_sq = 0;
  for (float v : x) {
    ref += v;
    ref_sq += double(v * v);
  }
  const double tol = gamma(depth(n)) * ref;
  float r = 0, q = 0;
  reduce(view(x.data(), 1, n), view(&r, 1, 1), reduce_op::sum);
  reduce_sum_and_sum_sq(view(x.data(), 1, n), view(&r, 1, 1), view(&q, 1, 1));
  CHECK(std::fabs(r - ref) <= tol);
  CHECK(std::fabs(q - ref_sq) <= gamma(depth(n)) * ref_sq);
  // each_col: 2^20 rows x 4 columns.
  const index_t M = index_t(1) << 20;
  float c[4] = {};
  reduce(view(x.data(), M, 4), view(c, 1, 4), reduce_op::sum, {reduce_dir::each_col});
  for (index_t j = 0; j < 4; ++j) {
    double cref = 0;
    for (index_t i = 0; i < M; ++i) cref += x[std::size_t(i * 4 + j)];
    CHECK(std::fabs(c[j] - cref) <= gamma(depth(M)) * cref);
  }
}

TEST_CASE("reduce: max / min / absmax special values") {
  for (reduce_dir dir : both_dirs)
    for (index_t n : {index_t(1), W - 1, W, W + 1, 2 * W + 3, 64 * W + 5}) {
      CAPTURE(n);
      CAPTURE(int(dir));
      const bool rows = dir == reduce_dir::each_row;
      auto run = [&](const std::vector<float>& x, reduce_op op, float old = 0.0f, bool acc = false) {
        float r = old;
        if (rows)
          reduce(view(x.data(), 1, n), view(&r, 1, 1), op, {dir, acc});
        else
          reduce(view(x.data(), n, 1), view(&r, 1, 1), op, {dir, acc});
        return r;
      };
      // A NaN at every position (including the vector tail) gives the canonical qNaN, any payload or sign.
      for (index_t pos = 0; pos < n; pos += std::max<index_t>(1, n / 7)) {
        std::vector<float> x = test::uniform(std::size_t(n), -5.0f, 5.0f, std::uint64_t(pos));
        x[std::size_t(pos)] = test::from_bits(0xffc01234u);  // -NaN with a payload
        for (reduce_op op : {reduce_op::max, reduce_op::min, reduce_op::absmax}) CHECK(bits(run(x, op)) == 0x7fc00000u);
        CHECK(std::isnan(run(x, reduce_op::sum)));
        x[std::size_t(pos)] = test::from_bits(0x7f800001u);  // signalling NaN
        CHECK(bits(run(x, reduce_op::max)) == 0x7fc00000u);
      }
      // Infinities are ordinary values; Inf - Inf in a sum is NaN.
      std::vector<float> x(std::size_t(n), -inf);
      CHECK(run(x, reduce_op::max) == -inf);
      CHECK(run(x, reduce_op::min) == -inf);
      CHECK(run(x, reduce_op::absmax) == inf);
      CHECK(run(x, reduce_op::sum) == -inf);
      x.back() = inf;
      CHECK(run(x, reduce_op::max) == inf);
      if (n > 1) CHECK(std::isnan(run(x, reduce_op::sum)));
      // absmax is a magnitude.
      std::vector<float> y(std::size_t(n), -0.5f);
      y[std::size_t(n / 2)] = -3.0f;
      CHECK(run(y, reduce_op::absmax) == 3.0f);
      if (n > 1) CHECK(run(y, reduce_op::max) == -0.5f);
      CHECK(run(y, reduce_op::min) == -3.0f);
      // accumulate: the old out value takes part, a NaN one too.
      CHECK(run(y, reduce_op::max, 2.0f, true) == 2.0f);
      CHECK(run(y, reduce_op::min, -2.0f, true) == -3.0f);
      CHECK(bits(run(y, reduce_op::max, test::from_bits(0xffc00001u), true)) == 0x7fc00000u);
      CHECK(run(y, reduce_op::sum, 1.0f, true) == 1.0f + float(n - 1) * -0.5f - 3.0f);
    }
}

TEST_CASE("reduce: empty reductions give the identity") {
  std::vector<float> none(1);
  for (auto [op, id] : {std::pair{reduce_op::sum, 0.0f}, std::pair{reduce_op::max, -inf}, std::pair{reduce_op::min, inf},
                        std::pair{reduce_op::absmax, 0.0f}, std::pair{reduce_op::sum_sq, 0.0f}}) {
    std::vector<float> o(5, 9.0f);
    reduce(mat<const float>{none.data(), 5, 0, 0}, view(o.data(), 5, 1), op);  // each_row, no columns
    for (float v : o) CHECK(v == id);
    reduce(mat<const float>{nullptr, 0, 5, 5}, view(o.data(), 1, 5), op, {reduce_dir::each_col});  // no rows
    for (float v : o) CHECK(v == id);
    std::vector<bf16> ob(5, from_f<bf16>(9.0f));
    reduce(mat<const float>{nullptr, 0, 5, 5}, view(ob.data(), 1, 5), op, {reduce_dir::each_col});
    for (bf16 v : ob) CHECK(to_float(v) == id);
    o.assign(5, 9.0f);
    reduce(mat<const float>{nullptr, 0, 5, 5}, view(o.data(), 1, 5), op, {reduce_dir::each_col, true});
    for (float v : o) CHECK(v == 9.0f);
  }
  // Zero-size outputs: nothing to do.
  reduce(mat<const float>{nullptr, 0, 3, 3}, mat<float>{nullptr, 0, 1, 1}, reduce_op::sum);
}

TEST_CASE("reduce: kernel object reuse, const and mutable views") {
  const index_t M = 9, N = 2 * W + 1;
  reduce_kernel<approx::exact, float, float> k(M, N, reduce_op::sum, {reduce_dir::each_col});
  CHECK(k.out_rows() == 1);
  CHECK(k.out_cols() == N);
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<float> x = test::uniform(std::size_t(M * N), -1.0f, 1.0f, std::uint64_t(rep));
    std::vector<float> o(static_cast<std::size_t>(N));
    if (rep % 2)
      k(view(static_cast<const float*>(x.data()), M, N), view(o.data(), 1, N));
    else
      k(view(x.data(), M, N), view(o.data(), 1, N));
    for (index_t j = 0; j < N; ++j) {
      double r = 0, a = 0;
      for (index_t i = 0; i < M; ++i) {
        r += x[std::size_t(i * N + j)];
        a += std::fabs(x[std::size_t(i * N + j)]);
      }
      CHECK(std::fabs(o[std::size_t(j)] - r) <= gamma(depth(M)) * a);
    }
  }
}

TEST_CASE("reduce: called from inside an OpenMP region") {
  const index_t M = 300, N = 77;
  const std::vector<float> x = test::uniform(std::size_t(M * N), -1.0f, 1.0f, 5);
  std::vector<float> ref(static_cast<std::size_t>(N)), got(static_cast<std::size_t>(8 * N));
  reduce(view(x.data(), M, N), view(ref.data(), 1, N), reduce_op::sum, {reduce_dir::each_col});
#pragma omp parallel for num_threads(4)
  for (int t = 0; t < 8; ++t)
    reduce(view(x.data(), M, N), view(got.data() + t * N, 1, N), reduce_op::sum, {reduce_dir::each_col});
  for (index_t t = 0; t < 8; ++t)
    for (index_t j = 0; j < N; ++j) CHECK(bits(got[std::size_t(t * N + j)]) == bits(ref[std::size_t(j)]));
}

TEST_CASE("reduce: bad arguments throw tpp::error naming op and argument") {
  std::vector<float> a(64), o(64);
  const auto in = view(a.data(), 4, 8);
  CHECK_THROWS_WITH_AS(reduce(in, view(o.data(), 1, 8), reduce_op::sum), doctest::Contains("reduce: out"), error);
  CHECK_THROWS_WITH_AS(reduce(in, view(o.data(), 4, 2), reduce_op::sum), doctest::Contains("reduce: out"), error);
  CHECK_THROWS_AS(reduce(in, view(o.data(), 4, 1), reduce_op::sum, {reduce_dir::each_col}), error);
  CHECK_NOTHROW(reduce(in, view(o.data(), 1, 8), reduce_op::sum, {reduce_dir::each_col}));
  CHECK_THROWS_WITH_AS(reduce(mat<float>{a.data(), 4, 8, 7}, view(o.data(), 4, 1), reduce_op::sum),
                       doctest::Contains("reduce: in.ld"), error);
  CHECK_THROWS_WITH_AS(reduce(mat<float>{nullptr, 4, 8, 8}, view(o.data(), 4, 1), reduce_op::sum),
                       doctest::Contains("reduce: in.data"), error);
  CHECK_THROWS_WITH_AS(reduce(mat<float>{a.data(), -1, 8, 8}, view(o.data(), 4, 1), reduce_op::sum),
                       doctest::Contains("reduce: in.rows"), error);
  CHECK_THROWS_WITH_AS(reduce(in, mat<float>{o.data(), 4, 1, 0}, reduce_op::sum), doctest::Contains("reduce: out.ld"), error);
  CHECK_THROWS_WITH_AS(reduce(in, mat<float>{nullptr, 4, 1, 1}, reduce_op::sum), doctest::Contains("reduce: out.data"), error);
  CHECK_THROWS_WITH_AS(reduce(in, view(o.data(), 4, 1), reduce_op::sum_and_sum_sq), doctest::Contains("reduce: op"), error);
  CHECK_THROWS_WITH_AS(reduce(in, view(o.data(), 4, 1), reduce_op(42)), doctest::Contains("reduce: op"), error);
  CHECK_THROWS_WITH_AS(reduce(in, view(o.data(), 4, 1), reduce_op::sum, {reduce_dir(7)}), doctest::Contains("params.dir"), error);
  CHECK_THROWS_WITH_AS(reduce_sum_and_sum_sq(in, view(o.data(), 4, 1), view(o.data(), 4, 1)),
                       doctest::Contains("reduce: sum_sq"), error);
  CHECK_THROWS_WITH_AS(reduce_sum_and_sum_sq(in, view(o.data(), 4, 1), view(o.data() + 8, 1, 8)),
                       doctest::Contains("reduce: sum_sq"), error);
  CHECK_THROWS_WITH_AS((reduce_kernel<>(-1, 3, reduce_op::sum)), doctest::Contains("reduce: rows"), error);
  CHECK_THROWS_WITH_AS((reduce_kernel<>(3, -1, reduce_op::sum)), doctest::Contains("reduce: cols"), error);
  reduce_kernel<> k(4, 8, reduce_op::max);
  CHECK_THROWS_WITH_AS(k(view(a.data(), 4, 7), view(o.data(), 4, 1)), doctest::Contains("reduce: in"), error);
  CHECK_THROWS_WITH_AS(k(in, view(o.data(), 4, 1), view(o.data() + 8, 4, 1)), doctest::Contains("reduce: op"), error);
  CHECK_NOTHROW(k(in, view(o.data(), 4, 1)));
}
