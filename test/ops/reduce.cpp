// ops/reduce.hpp: every kind in both directions against a double-precision reference, with the tolerance
// the header documents (γ_d Σ|t|, d = 24 + ceil(log2 n)); max/min/absmax exact; the squares through every
// registered policy; named shapes around the vector width, padded views with NaN sentinels, bf16 in and
// out, accumulate, special values, large-n accuracy, the caller's workspace, bad arguments and aliasing.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/reduce.hpp>

#include "approx/sweep.hpp"
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

// f(std::integral_constant<reduce_kind, k>{}): a run-time kind to the compile-time one the API takes.
template <class F>
void with_kind(reduce_kind k, F&& f) {
  using enum reduce_kind;
  switch (k) {
    case sum: f(std::integral_constant<reduce_kind, sum>{}); break;
    case max: f(std::integral_constant<reduce_kind, max>{}); break;
    case min: f(std::integral_constant<reduce_kind, min>{}); break;
    case absmax: f(std::integral_constant<reduce_kind, absmax>{}); break;
    case sum_sq: f(std::integral_constant<reduce_kind, sum_sq>{}); break;
    case sum_and_sum_sq: f(std::integral_constant<reduce_kind, sum_and_sum_sq>{}); break;
  }
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
ref_result reference(const std::vector<float>& x, reduce_kind op) {
  ref_result r{{0, 0}, {0, 0}, index_t(x.size())};
  switch (op) {
    case reduce_kind::sum:
    case reduce_kind::sum_sq:
    case reduce_kind::sum_and_sum_sq:
      for (float v : x) {
        const double s = op == reduce_kind::sum_sq ? double(P::mul(v, v)) : double(v);
        r.value[0] += s;
        r.abs_sum[0] += std::fabs(s);
        if (op == reduce_kind::sum_and_sum_sq) {
          const double q = double(P::mul(v, v));
          r.value[1] += q;
          r.abs_sum[1] += std::fabs(q);
        }
      }
      break;
    case reduce_kind::max:
      r.value[0] = -INFINITY;
      for (float v : x) r.value[0] = std::isnan(v) || std::isnan(r.value[0]) ? NAN : std::max(r.value[0], double(v));
      break;
    case reduce_kind::min:
      r.value[0] = INFINITY;
      for (float v : x) r.value[0] = std::isnan(v) || std::isnan(r.value[0]) ? NAN : std::min(r.value[0], double(v));
      break;
    case reduce_kind::absmax:
      r.value[0] = 0;
      for (float v : x) r.value[0] = std::isnan(v) || std::isnan(r.value[0]) ? NAN : std::max(r.value[0], std::fabs(double(v)));
      break;
  }
  return r;
}

bool additive(reduce_kind op) { return op == reduce_kind::sum || op == reduce_kind::sum_sq || op == reduce_kind::sum_and_sum_sq; }

// Combines an old out value into a reference (accumulate).
void add_old(ref_result& r, int k, reduce_kind op, float old) {
  if (additive(op)) {
    r.value[k] += old;
    r.abs_sum[k] += std::fabs(old);
    ++r.n;
  } else if (std::isnan(old) || std::isnan(r.value[k])) {
    r.value[k] = NAN;
  } else {
    r.value[k] = op == reduce_kind::min ? std::min(r.value[k], double(old)) : std::max(r.value[k], double(old));
  }
}

template <class TO>
void check_value(float got, const ref_result& r, int k, reduce_kind op) {
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
void check_case(index_t M, index_t N, reduce_kind op, reduce_dir dir, bool accumulate, std::uint64_t seed,
                float lo = -2.0f, float hi = 2.0f, index_t pad = 3) {
  CAPTURE(M);
  CAPTURE(N);
  CAPTURE(int(op));
  CAPTURE(int(dir));
  CAPTURE(accumulate);
  const std::vector<float> v = test::uniform(std::size_t(M * N), lo, hi, seed);
  padded<TI> in(v, M, N, N + pad);
  const int K = op == reduce_kind::sum_and_sum_sq ? 2 : 1;
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
  with_kind(op, [&](auto kind) {
    if constexpr (kind() == reduce_kind::sum_and_sum_sq)
      reduce<kind(), P>(in.view(), out[0], out[1], p);
    else
      reduce<kind(), P>(in.cview(), out[0], p);
  });
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

const reduce_kind all_ops[] = {reduce_kind::sum, reduce_kind::max, reduce_kind::min, reduce_kind::absmax, reduce_kind::sum_sq,
                             reduce_kind::sum_and_sum_sq};
const reduce_dir both_dirs[] = {reduce_dir::each_row, reduce_dir::each_col};

}  // namespace

TEST_CASE("reduce: every op and direction on edge shapes (fp32, padded ld with NaN sentinels)") {
  std::uint64_t seed = 1;
  for (reduce_kind op : all_ops)
    for (reduce_dir dir : both_dirs)
      for (index_t M : edge_sizes())
        for (index_t N : edge_sizes()) check_case<approx::exact, float, float>(M, N, op, dir, false, seed++);
}

TEST_CASE("reduce: 1x1, long rows and tall columns (several leaves)") {
  std::uint64_t seed = 500;
  for (reduce_kind op : all_ops)
    for (reduce_dir dir : both_dirs) {
      check_case<approx::exact, float, float>(1, 1, op, dir, false, seed++);
      check_case<approx::exact, float, float>(3, 64 * W * 3 + 5, op, dir, false, seed++);  // 3+ row leaves
      check_case<approx::exact, float, float>(16 * 9 + 3, 5, op, dir, false, seed++);      // 10 column leaves
      check_case<approx::exact, float, float>(40, 2048 + W + 1, op, dir, false, seed++);   // two column chunks
    }
}

TEST_CASE("reduce: bf16 in, bf16 out, accumulate") {
  std::uint64_t seed = 1000;
  for (reduce_kind op : all_ops)
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
  for (reduce_kind op : {reduce_kind::sum_sq, reduce_kind::sum_and_sum_sq})
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
  reduce<reduce_kind::sum_sq, P>(view(x.data(), 1, N), view(col.data(), 1, N), {reduce_dir::each_col});
  reduce<reduce_kind::sum_sq, P>(view(x.data(), N, 1), view(row.data(), N, 1), {reduce_dir::each_row});
  reduce<reduce_kind::sum_and_sum_sq, P>(view(x.data(), 1, N), view(s.data(), 1, N), view(col.data(), 1, N),
                                         {reduce_dir::each_col});
  std::size_t bad = 0;
  for (index_t j = 0; j < N; ++j) {
    const float want = P::mul(x[std::size_t(j)], x[std::size_t(j)]);
    bad += bits(col[std::size_t(j)]) != bits(want) || bits(row[std::size_t(j)]) != bits(want) ||
           bits(s[std::size_t(j)]) != bits(x[std::size_t(j)]);
  }
  INFO(P::name());
  CHECK(bad == 0);
}
TEST_CASE_TEMPLATE_APPLY(reduce_policy_sweep, tpp::test::op_policies);

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
  reduce<reduce_kind::sum>(view(x.data(), 1, n), view(&r, 1, 1));
  reduce<reduce_kind::sum_and_sum_sq>(view(x.data(), 1, n), view(&r, 1, 1), view(&q, 1, 1));
  CHECK(std::fabs(r - ref) <= tol);
  CHECK(std::fabs(q - ref_sq) <= gamma(depth(n)) * ref_sq);
  // each_col: 2^20 rows x 4 columns.
  const index_t M = index_t(1) << 20;
  float c[4] = {};
  reduce<reduce_kind::sum>(view(x.data(), M, 4), view(c, 1, 4), {reduce_dir::each_col});
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
      auto run = [&](const std::vector<float>& x, reduce_kind op, float old = 0.0f, bool acc = false) {
        float r = old;
        with_kind(op, [&](auto kind) {
          if constexpr (kind() != reduce_kind::sum_and_sum_sq) {
            if (rows)
              reduce<kind()>(view(x.data(), 1, n), view(&r, 1, 1), {dir, acc});
            else
              reduce<kind()>(view(x.data(), n, 1), view(&r, 1, 1), {dir, acc});
          }
        });
        return r;
      };
      // A NaN at every position (including the vector tail) gives the canonical qNaN, any payload or sign.
      for (index_t pos = 0; pos < n; pos += std::max<index_t>(1, n / 7)) {
        std::vector<float> x = test::uniform(std::size_t(n), -5.0f, 5.0f, std::uint64_t(pos));
        x[std::size_t(pos)] = test::from_bits(0xffc01234u);  // -NaN with a payload
        for (reduce_kind op : {reduce_kind::max, reduce_kind::min, reduce_kind::absmax}) CHECK(bits(run(x, op)) == 0x7fc00000u);
        CHECK(std::isnan(run(x, reduce_kind::sum)));
        x[std::size_t(pos)] = test::from_bits(0x7f800001u);  // signalling NaN
        CHECK(bits(run(x, reduce_kind::max)) == 0x7fc00000u);
      }
      // Infinities are ordinary values; Inf - Inf in a sum is NaN.
      std::vector<float> x(std::size_t(n), -inf);
      CHECK(run(x, reduce_kind::max) == -inf);
      CHECK(run(x, reduce_kind::min) == -inf);
      CHECK(run(x, reduce_kind::absmax) == inf);
      CHECK(run(x, reduce_kind::sum) == -inf);
      x.back() = inf;
      CHECK(run(x, reduce_kind::max) == inf);
      if (n > 1) CHECK(std::isnan(run(x, reduce_kind::sum)));
      // absmax is a magnitude.
      std::vector<float> y(std::size_t(n), -0.5f);
      y[std::size_t(n / 2)] = -3.0f;
      CHECK(run(y, reduce_kind::absmax) == 3.0f);
      if (n > 1) CHECK(run(y, reduce_kind::max) == -0.5f);
      CHECK(run(y, reduce_kind::min) == -3.0f);
      // accumulate: the old out value takes part, a NaN one too.
      CHECK(run(y, reduce_kind::max, 2.0f, true) == 2.0f);
      CHECK(run(y, reduce_kind::min, -2.0f, true) == -3.0f);
      CHECK(bits(run(y, reduce_kind::max, test::from_bits(0xffc00001u), true)) == 0x7fc00000u);
      CHECK(run(y, reduce_kind::sum, 1.0f, true) == 1.0f + float(n - 1) * -0.5f - 3.0f);
    }
}

TEST_CASE("reduce: empty reductions give the identity") {
  std::vector<float> none(1);
  for (auto [op, id] : {std::pair{reduce_kind::sum, 0.0f}, std::pair{reduce_kind::max, -inf}, std::pair{reduce_kind::min, inf},
                        std::pair{reduce_kind::absmax, 0.0f}, std::pair{reduce_kind::sum_sq, 0.0f}}) {
    with_kind(op, [&, id = id](auto kind) {
      if constexpr (kind() != reduce_kind::sum_and_sum_sq) {
        constexpr reduce_kind K = kind();
        std::vector<float> o(5, 9.0f);
        reduce<K>(mat<const float>{none.data(), 5, 0, 0}, view(o.data(), 5, 1));  // each_row, no columns
        for (float v : o) CHECK(v == id);
        reduce<K>(mat<const float>{nullptr, 0, 5, 5}, view(o.data(), 1, 5), {reduce_dir::each_col});  // no rows
        for (float v : o) CHECK(v == id);
        std::vector<bf16> ob(5, from_f<bf16>(9.0f));
        reduce<K>(mat<const float>{nullptr, 0, 5, 5}, view(ob.data(), 1, 5), {reduce_dir::each_col});
        for (bf16 v : ob) CHECK(to_float(v) == id);
        o.assign(5, 9.0f);
        reduce<K>(mat<const float>{nullptr, 0, 5, 5}, view(o.data(), 1, 5), {reduce_dir::each_col, true});
        for (float v : o) CHECK(v == 9.0f);
      }
    });
  }
  // Zero-size outputs: nothing to do.
  reduce<reduce_kind::sum>(mat<const float>{nullptr, 0, 3, 3}, mat<float>{nullptr, 0, 1, 1});
}

TEST_CASE("reduce: kernel object reuse, const and mutable views") {
  const index_t M = 9, N = 2 * W + 1;
  reduce_kernel<reduce_kind::sum, approx::exact, float, float> k(M, N, {reduce_dir::each_col});
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
  reduce<reduce_kind::sum>(view(x.data(), M, N), view(ref.data(), 1, N), {reduce_dir::each_col});
#pragma omp parallel for num_threads(4)
  for (int t = 0; t < 8; ++t)
    reduce<reduce_kind::sum>(view(x.data(), M, N), view(got.data() + t * N, 1, N), {reduce_dir::each_col});
  for (index_t t = 0; t < 8; ++t)
    for (index_t j = 0; j < N; ++j) CHECK(bits(got[std::size_t(t * N + j)]) == bits(ref[std::size_t(j)]));
}

namespace {

// Whether reduce<K> / reduce_kernel<K> take these arguments (the kind is a template parameter: a wrong
// kind or output count does not compile).
template <reduce_kind K, class... Args>
concept reduce_call = requires(Args... args) { tpp::reduce<K>(args...); };
template <reduce_kind K>
concept reduce_kind_accepted = requires { typename reduce_kernel<K>; };

}  // namespace

TEST_CASE("reduce: bad arguments throw tpp::error naming op and argument") {
  std::vector<float> a(64), o(64);
  const auto in = view(a.data(), 4, 8);
  using enum reduce_kind;
  CHECK_THROWS_WITH_AS(reduce<sum>(in, view(o.data(), 1, 8)), doctest::Contains("reduce: out"), error);
  CHECK_THROWS_WITH_AS(reduce<sum>(in, view(o.data(), 4, 2)), doctest::Contains("reduce: out"), error);
  CHECK_THROWS_AS(reduce<sum>(in, view(o.data(), 4, 1), {reduce_dir::each_col}), error);
  CHECK_NOTHROW(reduce<sum>(in, view(o.data(), 1, 8), {reduce_dir::each_col}));
  CHECK_THROWS_WITH_AS(reduce<sum>(mat<float>{a.data(), 4, 8, 7}, view(o.data(), 4, 1)),
                       doctest::Contains("reduce: in.ld"), error);
  CHECK_THROWS_WITH_AS(reduce<sum>(mat<float>{nullptr, 4, 8, 8}, view(o.data(), 4, 1)),
                       doctest::Contains("reduce: in.data"), error);
  CHECK_THROWS_WITH_AS(reduce<sum>(mat<float>{a.data(), -1, 8, 8}, view(o.data(), 4, 1)),
                       doctest::Contains("reduce: in.rows"), error);
  CHECK_THROWS_WITH_AS(reduce<sum>(in, mat<float>{o.data(), 4, 1, 0}), doctest::Contains("reduce: out.ld"), error);
  CHECK_THROWS_WITH_AS(reduce<sum>(in, mat<float>{nullptr, 4, 1, 1}), doctest::Contains("reduce: out.data"), error);
  // sum_and_sum_sq with one output, a kind that is not a reduce_kind, a two-output call of another kind:
  // rejected at compile time now that the kind is a template parameter.
  static_assert(!reduce_call<sum_and_sum_sq, mat<float>, mat<float>>);
  static_assert(reduce_call<sum_and_sum_sq, mat<float>, mat<float>, mat<float>>);
  static_assert(reduce_call<sum, mat<float>, mat<float>>);
  static_assert(!reduce_call<reduce_kind(42), mat<float>, mat<float>>);
  static_assert(!reduce_kind_accepted<reduce_kind(42)>);
  static_assert(reduce_kind_accepted<absmax>);
  static_assert(!std::is_invocable_v<const reduce_kernel<max>&, mat<const float>, mat<float>, mat<float>>);
  static_assert(std::is_invocable_v<const reduce_kernel<max>&, mat<const float>, mat<float>>);
  static_assert(!std::is_invocable_v<const reduce_kernel<sum_and_sum_sq>&, mat<const float>, mat<float>>);
  CHECK_THROWS_WITH_AS(reduce<sum>(in, view(o.data(), 4, 1), {reduce_dir(7)}), doctest::Contains("params.dir"), error);
  CHECK_THROWS_WITH_AS(reduce<sum_and_sum_sq>(in, view(o.data(), 4, 1), view(o.data(), 4, 1)),
                       doctest::Contains("reduce: sum_sq"), error);
  CHECK_THROWS_WITH_AS(reduce<sum_and_sum_sq>(in, view(o.data(), 4, 1), view(o.data() + 8, 1, 8)),
                       doctest::Contains("reduce: sum_sq"), error);
  CHECK_THROWS_WITH_AS((reduce_kernel<sum>(-1, 3)), doctest::Contains("reduce: rows"), error);
  CHECK_THROWS_WITH_AS((reduce_kernel<sum>(3, -1)), doctest::Contains("reduce: cols"), error);
  reduce_kernel<max> k(4, 8);
  CHECK_THROWS_WITH_AS(k(view(a.data(), 4, 7), view(o.data(), 4, 1)), doctest::Contains("reduce: in"), error);
  CHECK_NOTHROW(k(in, view(o.data(), 4, 1)));
}

TEST_CASE("reduce: outputs may not overlap the input nor each other") {
  using enum reduce_kind;
  std::vector<float> a(64, 1.0f);
  const auto in = view(a.data(), 4, 8);
  // Each output against in: the first element, the last, and a strided column inside in's rows.
  CHECK_THROWS_WITH_AS(reduce<sum>(in, view(a.data(), 4, 1)), doctest::Contains("reduce: out overlaps in"), error);
  CHECK_THROWS_WITH_AS(reduce<max>(in, view(a.data() + 7, 1, 8), {reduce_dir::each_col}),
                       doctest::Contains("reduce: out overlaps in"), error);
  CHECK_THROWS_WITH_AS(reduce<absmax>(in, view(a.data() + 3, 4, 1, 8)), doctest::Contains("reduce: out overlaps in"), error);
  std::vector<float> o(64);
  CHECK_THROWS_WITH_AS(reduce<sum_and_sum_sq>(in, view(a.data() + 31, 4, 1), view(o.data(), 4, 1)),
                       doctest::Contains("reduce: sum overlaps in"), error);
  CHECK_THROWS_WITH_AS(reduce<sum_and_sum_sq>(in, view(o.data(), 1, 8), view(a.data() + 24, 1, 8), {reduce_dir::each_col}),
                       doctest::Contains("reduce: sum_sq overlaps in"), error);
  CHECK_THROWS_WITH_AS(reduce<sum_and_sum_sq>(in, view(o.data(), 4, 1, 2), view(o.data() + 6, 4, 1, 2)),
                       doctest::Contains("reduce: sum_sq overlaps sum"), error);
  // Disjoint views of one buffer are fine: in's rows 0-3 of 8 columns, outputs after them or between the
  // columns of an input view with a wider ld.
  CHECK_NOTHROW(reduce<sum>(in, view(a.data() + 32, 4, 1)));
  std::vector<float> b(40, 1.0f);
  CHECK_NOTHROW(reduce<sum_and_sum_sq>(view(b.data(), 4, 8, 10), view(b.data() + 8, 4, 1, 10), view(b.data() + 9, 4, 1, 10)));
  CHECK(b[8] == 8.0f);
  CHECK(b[9] == 8.0f);
}

TEST_CASE("reduce: a caller's workspace gives the arena's results; too small throws") {
  using enum reduce_kind;
  const index_t M = 16 * 5 + 3, N = 2048 + W + 1;  // several leaves and two column chunks
  const std::vector<float> x = test::uniform(std::size_t(M * N), -1.0f, 1.0f, 77);
  const auto in = view(x.data(), M, N);
  const reduce_kernel<sum_and_sum_sq> k(M, N, {reduce_dir::each_col});
  const reduce_kernel<max, approx::exact, float, bf16> kmax(M, N, {reduce_dir::each_col});
  const reduce_kernel<sum> krow(M, N);
  CHECK(k.workspace_bytes() > 0);
  CHECK(kmax.workspace_bytes() > 0);  // one leaf through scratch for a bf16 out
  CHECK(reduce_kernel<max>(M, N, {reduce_dir::each_col}).workspace_bytes() == 0);  // straight into out
  CHECK(krow.workspace_bytes() == 0);
  std::vector<float> s1(static_cast<std::size_t>(N)), q1(s1), s2(s1), q2(s1);
  std::vector<bf16> m1(static_cast<std::size_t>(N)), m2(m1);
  k(in, view(s1.data(), 1, N), view(q1.data(), 1, N));
  kmax(in, view(m1.data(), 1, N));
  // Unaligned caller memory, poisoned.
  std::vector<unsigned char> mem(std::max(k.workspace_bytes(), kmax.workspace_bytes()) + 3, 0xff);
  const workspace ws{mem.data() + 3, mem.size() - 3};
  k(in, view(s2.data(), 1, N), view(q2.data(), 1, N), ws);
  kmax(in, view(m2.data(), 1, N), ws);
  std::size_t bad = 0;
  for (index_t j = 0; j < N; ++j)
    bad += bits(s1[std::size_t(j)]) != bits(s2[std::size_t(j)]) || bits(q1[std::size_t(j)]) != bits(q2[std::size_t(j)]) ||
           m1[std::size_t(j)].bits != m2[std::size_t(j)].bits;
  CHECK(bad == 0);
  const workspace small{mem.data(), k.workspace_bytes() - 65};
  CHECK_THROWS_WITH_AS(k(in, view(s2.data(), 1, N), view(q2.data(), 1, N), small), doctest::Contains("reduce: workspace"), error);
  std::vector<float> r(static_cast<std::size_t>(M));
  CHECK_NOTHROW(krow(in, view(r.data(), M, 1), workspace{}));
}
