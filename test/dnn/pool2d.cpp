// dnn/pool2d.hpp: max and average pooling, forward and backward, against double-precision loops over a
// sweep (strides 1-3, every padding below the window, windows that see mostly padding, odd sizes, c below
// and above the vector width, n = 1 and 2, both average divisors). Max is a selection: y and argmax equal
// the reference's exactly (first maximum in scan order on the many ties of small-integer data; a NaN wins).
// An average on data whose fp32 sums are exact (multiples of 1/8 in [-1, 1]) equals Policy::mul(sum,
// 1/count) bit for bit, for exact and mitchell<7>; on random data it is within the fp32 sum bound
// gamma_(k+1) sum |x| / count. Backward: against the double sum of dy (max) or of the policy's products
// P(dy, 1/count) (avg) with the same bound, and against central differences of sum(y * g). Then bf16,
// global pooling, oneDNN's pooling primitives (where the build has oneDNN), nested calls and bad inputs.

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <tpp/approx/mitchell.hpp>
#include <tpp/dnn/pool2d.hpp>

#include "support.hpp"

#if TPP_TEST_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace {

using namespace tpp;
using dnn::pool2d_shape;
using dnn::pool_kind;

// Multiples of 1/8 in [-1, 1] (exact sums, many ties), or uniform in [-1, 1).
std::vector<float> data(std::size_t n, std::uint64_t seed, bool eighths) {
  auto v = test::uniform(n, -1.0f, 1.0f, seed);
  if (eighths)
    for (float& x : v) x = std::round(x * 8.0f) / 8.0f;
  return v;
}

// The reference forward: per output (N*P*Q, C) the value (double), argmax, |x| sum and tap count.
struct ref_fwd {
  std::vector<double> v, mag;
  std::vector<std::int32_t> arg;
  std::vector<float> inv;  // 1 / divisor, as the layer computes it
  std::vector<index_t> taps;
};
template <class F>
void windows(const pool2d_shape& s, F f) {  // f(o, list of (input row, tap)) per output pixel
  std::vector<std::pair<index_t, std::int32_t>> t;
  for (index_t n = 0; n < s.n; ++n)
    for (index_t p = 0; p < s.p(); ++p)
      for (index_t q = 0; q < s.q(); ++q) {
        t.clear();
        for (index_t r = 0; r < s.r; ++r)
          for (index_t c = 0; c < s.s; ++c) {
            const index_t ih = p * s.stride_h - s.pad_h + r, iw = q * s.stride_w - s.pad_w + c;
            if (ih >= 0 && ih < s.h && iw >= 0 && iw < s.w) t.push_back({(n * s.h + ih) * s.w + iw, std::int32_t(r * s.s + c)});
          }
        f((n * s.p() + p) * s.q() + q, t);
      }
}
template <class T>
ref_fwd reference(const pool2d_shape& s, const std::vector<T>& x) {
  const std::size_t outs = std::size_t(s.n * s.p() * s.q());
  ref_fwd r{std::vector<double>(outs * s.c), std::vector<double>(outs * s.c), std::vector<std::int32_t>(outs * s.c),
            std::vector<float>(outs), std::vector<index_t>(outs)};
  windows(s, [&](index_t o, const auto& t) {
    r.taps[o] = index_t(t.size());
    r.inv[o] = 1.0f / float(s.avg_count_pad ? s.r * s.s : index_t(t.size()));
    for (index_t c = 0; c < s.c; ++c) {
      const std::size_t e = std::size_t(o * s.c + c);
      double best = to_float(x[std::size_t(t[0].first * s.c + c)]), sum = 0, mag = 0;
      std::int32_t arg = t[0].second;
      for (const auto& [i, tap] : t) {
        const double v = to_float(x[std::size_t(i * s.c + c)]);
        if (!std::isnan(best) && (v > best || std::isnan(v))) best = v, arg = tap;
        sum += v, mag += std::abs(v);
      }
      r.v[e] = s.kind == pool_kind::max ? best : sum;
      r.mag[e] = mag, r.arg[e] = arg;
    }
  });
  return r;
}

// gamma_k = k u / (1 - k u), u = 2^-24
double gamma_n(double k) { return k * 0x1p-24 / (1 - k * 0x1p-24); }

template <class P, class T>
void check(const pool2d_shape& s, std::uint64_t seed, bool eighths) {
  const std::vector<index_t> fields{s.n, s.h, s.w, s.c, s.r, s.s, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.avg_count_pad};
  CAPTURE(fields);
  CAPTURE(eighths);
  const bool max = s.kind == pool_kind::max, is_bf16 = std::is_same_v<T, bf16>;
  const index_t xr = s.n * s.h * s.w, yr = s.n * s.p() * s.q();
  std::vector<T> x(std::size_t(xr * s.c)), dy(std::size_t(yr * s.c));
  for (std::size_t i = 0; const float v : data(x.size(), seed, eighths)) x[i++] = from_float<T>(v);
  for (std::size_t i = 0; const float v : data(dy.size(), seed + 1, eighths)) dy[i++] = from_float<T>(v);
  std::vector<T> y(dy.size(), from_float<T>(NAN)), y2(dy.size()), dx(x.size(), from_float<T>(NAN));
  std::vector<std::int32_t> arg(dy.size(), -1);
  const dnn::pool2d<P, T> pool(s);
  const mat<std::int32_t> A = max ? mat<std::int32_t>{arg.data(), yr, s.c, s.c} : mat<std::int32_t>{};
  pool.forward({x.data(), xr, s.c, s.c}, {y.data(), yr, s.c, s.c}, A);
  pool.forward({x.data(), xr, s.c, s.c}, {y2.data(), yr, s.c, s.c});  // inference: the same values
  pool.backward({dy.data(), yr, s.c, s.c}, {dx.data(), xr, s.c, s.c}, A);
  const ref_fwd ref = reference(s, x);
  std::size_t bad = 0;
  for (std::size_t e = 0; e < y.size(); ++e) {
    const std::size_t o = e / std::size_t(s.c);
    const double got = to_float(y[e]);
    double want = ref.v[e], tol = 0;
    if (!max && eighths)  // exact sum: the policy's product itself
      want = to_float(from_float<T>(P::mul(float(ref.v[e]), ref.inv[o])));
    else if (!max)
      want *= ref.inv[o], tol = (gamma_n(double(ref.taps[o]) + 1) * ref.mag[e] * ref.inv[o] + 0x1p-24 * std::abs(want)) +
                                 (is_bf16 ? 0x1p-8 * (std::abs(want) + 1e-30) : 0);
    const bool ok = std::abs(got - want) <= tol && (!max || arg[e] == ref.arg[e]) && to_float(y2[e]) == got;
    if (!ok && bad++ < 3) MESSAGE("y[", e, "] = ", got, " want ", want, " tol ", tol, " argmax ", arg[e], " want ", ref.arg[e]);
  }
  // dx by the double sum of what reaches each input: dy (max, through the reference argmax) or P(dy, 1/count)
  std::vector<double> dv(x.size()), dmag(x.size()), dk(x.size());
  windows(s, [&](index_t o, const auto& t) {
    for (const auto& [i, tap] : t)
      for (index_t c = 0; c < s.c; ++c) {
        const std::size_t e = std::size_t(o * s.c + c), d = std::size_t(i * s.c + c);
        if (max && ref.arg[e] != tap) continue;
        const double v = max ? to_float(dy[e]) : P::mul(to_float(dy[e]), ref.inv[std::size_t(o)]);
        dv[d] += v, dmag[d] += std::abs(v), dk[d] += 1;
      }
  });
  for (std::size_t d = 0; d < dx.size(); ++d) {
    const double tol = gamma_n(dk[d] + 1) * dmag[d] + (is_bf16 ? 0x1p-8 * std::abs(dv[d]) : 0), got = to_float(dx[d]);
    if (!(std::abs(got - dv[d]) <= tol) && bad++ < 6) MESSAGE("dx[", d, "] = ", got, " want ", dv[d], " tol ", tol);
  }
  CHECK(bad == 0);
}

// The sweep: strides 1-3, windows 2x2, 3x3, 3x2, 1x3, every padding below the window; c, n, sizes cycle.
std::vector<pool2d_shape> sweep(pool_kind kind, bool count_pad) {
  std::vector<pool2d_shape> v;
  const index_t cs[] = {3, 17, 40}, hs[] = {5, 7, 6, 1 + 3};
  int i = 0;
  for (index_t st = 1; st <= 3; ++st)
    for (auto [r, s] : {std::pair<index_t, index_t>{2, 2}, {3, 3}, {3, 2}, {1, 3}})
      for (index_t ph = 0; ph < r; ++ph)
        for (index_t pw = 0; pw < s; ++pw, ++i)
          v.push_back({1 + i % 2, hs[i % 4], hs[(i + 1) % 4], cs[i % 3], r, s, st, i % 2 ? st : 1 + st % 3, ph, pw, kind, count_pad});
  return v;
}

}  // namespace

TEST_CASE("pool2d: max and avg forward and backward vs double loops over the sweep (exact, mitchell<7>)") {
  std::uint64_t seed = 1;
  for (const bool eighths : {true, false})
    for (const pool2d_shape& s : sweep(pool_kind::max, false)) check<approx::exact, float>(s, seed += 2, eighths);
  for (const bool count_pad : {false, true})
    for (const pool2d_shape& s : sweep(pool_kind::avg, count_pad)) {
      check<approx::exact, float>(s, seed += 2, true);
      check<approx::exact, float>(s, seed += 2, false);
      check<approx::mitchell<7>, float>(s, seed += 2, true);
    }
}

TEST_CASE("pool2d: bf16 tensors, global pooling") {
  check<approx::exact, bf16>({2, 7, 6, 19, 3, 3, 2, 2, 1, 1, pool_kind::max}, 50, false);
  check<approx::exact, bf16>({2, 7, 6, 19, 3, 2, 2, 1, 1, 1, pool_kind::avg}, 51, false);
  const pool2d_shape g = pool2d_shape::global_avg(2, 7, 5, 40);
  CHECK((g.p() == 1 && g.q() == 1 && g.kind == pool_kind::avg));
  check<approx::exact, float>(g, 52, false);
  check<approx::mitchell<7>, float>(g, 53, true);
  pool2d_shape gm = g;
  gm.kind = pool_kind::max;
  check<approx::exact, float>(gm, 54, true);
  check<approx::exact, float>(pool2d_shape::global_avg(1, 2, 3, 1100), 55, false);  // past one channel run
  check<approx::exact, bf16>(pool2d_shape::global_avg(2, 3, 3, 21), 56, false);
}

TEST_CASE("pool2d: a NaN wins its window (the first NaN), argmax names it, with or without argmax") {
  const pool2d_shape s{1, 4, 10, 2, 2, 2, 2, 2, 0, 0, pool_kind::max};  // 2 x 5 outputs
  std::vector<float> x(80, 1.0f), y(20), y2(20), dy(20, 1.0f), dx(80);
  std::vector<std::int32_t> arg(20);
  const auto at = [](index_t ih, index_t iw, index_t c) { return std::size_t((ih * 10 + iw) * 2 + c); };
  x[at(1, 0, 0)] = NAN, x[at(1, 1, 0)] = -NAN, x[at(0, 1, 0)] = 2.0f;  // window (0, 0), channel 0
  x[at(3, 9, 1)] = NAN;                                                 // window (1, 4), channel 1
  const float inf = std::numeric_limits<float>::infinity();
  x[at(0, 2, 0)] = inf, x[at(1, 3, 0)] = -inf;  // window (0, 1): a value (its sum is NaN, the max is not)
  const dnn::pool2d<> pool(s);
  pool.forward({x.data(), 40, 2, 2}, {y.data(), 10, 2, 2}, {arg.data(), 10, 2, 2});
  pool.forward({x.data(), 40, 2, 2}, {y2.data(), 10, 2, 2});
  CHECK((std::isnan(y[0]) && !std::signbit(y[0]) && arg[0] == 2));  // the first NaN: tap (1, 0)
  CHECK((std::isnan(y[19]) && arg[19] == 3));
  CHECK((y[1] == 1.0f && arg[1] == 0));  // all tie: the first
  CHECK((y[2] == inf && arg[2] == 0 && y2[2] == inf));
  CHECK((std::isnan(y2[0]) && !std::signbit(y2[0]) && std::isnan(y2[19])));
  for (std::size_t i = 1; i < 19; ++i) CHECK(y2[i] == y[i]);
  pool.backward({dy.data(), 10, 2, 2}, {dx.data(), 40, 2, 2}, {arg.data(), 10, 2, 2});
  CHECK((dx[at(1, 0, 0)] == 1.0f && dx[at(1, 1, 0)] == 0.0f && dx[at(0, 1, 0)] == 0.0f && dx[at(3, 9, 1)] == 1.0f));
}

TEST_CASE("pool2d: backward equals central differences of sum(y * g)") {
  for (const pool_kind kind : {pool_kind::max, pool_kind::avg}) {
    const pool2d_shape s{2, 7, 6, 5, 3, 3, 2, 1, 1, 2, kind};
    const index_t xr = s.n * s.h * s.w, yr = s.n * s.p() * s.q();
    // distinct multiples of 1/64 (no ties; x +- h exact), h = 1/256
    std::vector<float> x(std::size_t(xr * s.c)), y(std::size_t(yr * s.c)), dx(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7919) % x.size()) / 64.0f - 4.0f;
    const auto g = data(y.size(), 61, true);
    std::vector<std::int32_t> arg(y.size());
    const mat<std::int32_t> A = kind == pool_kind::max ? mat<std::int32_t>{arg.data(), yr, s.c, s.c} : mat<std::int32_t>{};
    const dnn::pool2d<> pool(s);
    pool.forward({x.data(), xr, s.c, s.c}, {y.data(), yr, s.c, s.c}, A);
    pool.backward({g.data(), yr, s.c, s.c}, {dx.data(), xr, s.c, s.c}, A);
    // the difference quotient of sum(y * g): exact for max (a selection of exact x +- h); for avg each
    // changed y is one rounding of an exact sum times 1/count
    std::vector<float> yp(y.size()), ym(y.size());
    const float h = 1.0f / 256;
    std::size_t bad = 0;
    for (std::size_t e = 0; e < x.size(); e += 7) {
      const float keep = x[e];
      x[e] = keep + h;
      pool.forward({x.data(), xr, s.c, s.c}, {yp.data(), yr, s.c, s.c});
      x[e] = keep - h;
      pool.forward({x.data(), xr, s.c, s.c}, {ym.data(), yr, s.c, s.c});
      x[e] = keep;
      double fd = 0, tol = 0;
      for (std::size_t i = 0; i < y.size(); ++i)
        if (yp[i] != ym[i]) {
          fd += (double(yp[i]) - ym[i]) * g[i] / (2 * h);
          tol += 0x1p-24 * (std::abs(double(yp[i])) + std::abs(double(ym[i]))) * std::abs(g[i]) / (2 * h);
        }
      if (!(std::abs(fd - dx[e]) <= tol + gamma_n(10)) && bad++ < 3) MESSAGE("x[", e, "]: backward ", dx[e], " difference ", fd);
    }
    CHECK(bad == 0);
  }
}

#if TPP_TEST_WITH_ONEDNN
TEST_CASE("pool2d: oneDNN's pooling primitives give the same y and dx") {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  for (const pool2d_shape& s : {pool2d_shape{2, 9, 8, 17, 3, 3, 2, 2, 1, 1, pool_kind::max},
                                pool2d_shape{1, 7, 7, 40, 3, 2, 2, 3, 2, 1, pool_kind::avg, false},
                                pool2d_shape{1, 7, 7, 40, 3, 2, 2, 3, 2, 1, pool_kind::avg, true}}) {
    const index_t P = s.p(), Q = s.q(), xr = s.n * s.h * s.w, yr = s.n * P * Q;
    auto x = data(std::size_t(xr * s.c), 71, false), dy = data(std::size_t(yr * s.c), 72, false);
    std::vector<float> y(dy.size()), dx(x.size()), oy(dy.size()), odx(x.size());
    std::vector<std::int32_t> arg(dy.size());
    const bool max = s.kind == pool_kind::max;
    const dnn::pool2d<> pool(s);
    const mat<std::int32_t> A = max ? mat<std::int32_t>{arg.data(), yr, s.c, s.c} : mat<std::int32_t>{};
    pool.forward({x.data(), xr, s.c, s.c}, {y.data(), yr, s.c, s.c}, A);
    pool.backward({dy.data(), yr, s.c, s.c}, {dx.data(), xr, s.c, s.c}, A);
    const dnnl::memory::desc src({s.n, s.c, s.h, s.w}, dt::f32, tag::nhwc), dst({s.n, s.c, P, Q}, dt::f32, tag::nhwc);
    const dnnl::memory::dims st{s.stride_h, s.stride_w}, k{s.r, s.s}, pl{s.pad_h, s.pad_w},
        pr{(P - 1) * s.stride_h + s.r - s.h - s.pad_h, (Q - 1) * s.stride_w + s.s - s.w - s.pad_w};
    const auto alg = max ? dnnl::algorithm::pooling_max
                         : s.avg_count_pad ? dnnl::algorithm::pooling_avg_include_padding : dnnl::algorithm::pooling_avg_exclude_padding;
    const dnnl::pooling_forward::primitive_desc fpd({dnnl::prop_kind::forward_training, alg, src, dst, st, k, pl, pr}, eng);
    const dnnl::pooling_backward::primitive_desc bpd({alg, src, dst, st, k, pl, pr}, eng, fpd);
    dnnl::memory X(src, eng, x.data()), Y(dst, eng, oy.data()), DY(dst, eng, dy.data()), DX(src, eng, odx.data());
    dnnl::memory ws(fpd.workspace_desc(), eng);
    dnnl::pooling_forward(fpd).execute(strm, {{DNNL_ARG_SRC, X}, {DNNL_ARG_DST, Y}, {DNNL_ARG_WORKSPACE, ws}});
    dnnl::pooling_backward(bpd).execute(strm, {{DNNL_ARG_DIFF_DST, DY}, {DNNL_ARG_DIFF_SRC, DX}, {DNNL_ARG_WORKSPACE, ws}});
    strm.wait();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < y.size(); ++i)  // max: equal; avg: two roundings of at most 9 terms
      bad += !(std::abs(y[i] - oy[i]) <= (max ? 0.0 : gamma_n(12) * 2));
    for (std::size_t i = 0; i < dx.size(); ++i) bad += !(std::abs(dx[i] - odx[i]) <= gamma_n(12) * 4);
    CHECK(bad == 0);
  }
}
#endif

TEST_CASE("pool2d: called from inside a parallel region it gives the serial bits") {
  const pool2d_shape s{2, 9, 7, 33, 3, 3, 2, 2, 1, 1, pool_kind::avg};
  const auto x = data(std::size_t(s.n * s.h * s.w * s.c), 81, false);
  const index_t yr = s.n * s.p() * s.q();
  const dnn::pool2d<approx::mitchell<7>> pool(s);
  std::vector<float> ref(std::size_t(yr * s.c));
  pool.forward({x.data(), s.n * s.h * s.w, s.c, s.c}, {ref.data(), yr, s.c, s.c});
  std::vector<std::vector<float>> out(4, std::vector<float>(ref.size()));
  int diff = 0;
#pragma omp parallel for reduction(+ : diff)
  for (int t = 0; t < 4; ++t) {
    pool.forward({x.data(), s.n * s.h * s.w, s.c, s.c}, {out[std::size_t(t)].data(), yr, s.c, s.c});
    diff += out[std::size_t(t)] != ref;
  }
  CHECK(diff == 0);
}

TEST_CASE("pool2d: a bad shape field or view throws tpp::error naming it") {
  const auto arg = [](auto f) { return test::error_argument(f); };
  const auto make_with = [](auto edit) {
    return [edit] {
      pool2d_shape s{1, 5, 5, 4, 3, 3, 2, 2, 1, 1};
      edit(s);
      dnn::pool2d<> p(s);
    };
  };
  CHECK(arg(make_with([](pool2d_shape& s) { s.n = 0; })) == "n");
  CHECK(arg(make_with([](pool2d_shape& s) { s.c = -1; })) == "c");
  CHECK(arg(make_with([](pool2d_shape& s) { s.s = 0; })) == "s");
  CHECK(arg(make_with([](pool2d_shape& s) { s.stride_h = 0; })) == "stride_h");
  CHECK(arg(make_with([](pool2d_shape& s) { s.pad_w = -1; })) == "pad_w");
  CHECK(arg(make_with([](pool2d_shape& s) { s.pad_h = 3; })) == "pad_h");  // not below r
  CHECK(arg(make_with([](pool2d_shape& s) { s.h = 1, s.pad_h = 0; })) == "h");  // no output rows
  CHECK(arg(make_with([](pool2d_shape& s) { s.w = 2, s.pad_w = 0; })) == "w");
  CHECK(arg(make_with([](pool2d_shape& s) { s.kind = pool_kind(7); })) == "kind");
  CHECK(arg(make_with([](pool2d_shape& s) { s.n = index_t(1) << 40, s.h = index_t(1) << 20; })) == "n");
  CHECK(arg(make_with([](pool2d_shape& s) { s.h = s.r = s.w = s.s = index_t(1) << 16; })) == "r");  // int32 taps
  CHECK(arg(make_with([](pool2d_shape&) {})) == "(no error)");

  const dnn::pool2d<> mp(pool2d_shape{1, 5, 5, 4, 3, 3, 2, 2, 1, 1}), ap(pool2d_shape{1, 5, 5, 4, 3, 3, 2, 2, 1, 1, pool_kind::avg});
  std::vector<float> x(100), y(36), dy(36);
  std::vector<std::int32_t> am(36);
  const mat<const float> X{x.data(), 25, 4, 4}, DY{dy.data(), 9, 4, 4};
  const mat<float> Y{y.data(), 9, 4, 4}, DX{x.data(), 25, 4, 4};
  const mat<std::int32_t> A{am.data(), 9, 4, 4};
  CHECK(arg([&] { mp.forward(X, Y, A); }) == "(no error)");
  CHECK(arg([&] { mp.forward({x.data(), 24, 4, 4}, Y); }) == "x");
  CHECK(arg([&] { mp.forward(X, {y.data(), 9, 4, 3}); }) == "y.ld");
  CHECK(arg([&] { mp.forward(X, Y, {am.data(), 8, 4, 4}); }) == "argmax");  // wrong shape
  CHECK(arg([&] { ap.forward(X, Y, A); }) == "argmax");                     // avg has none
  CHECK(arg([&] { mp.forward(X, {x.data() + 60, 9, 4, 4}); }) == "x");      // y over x
  CHECK(arg([&] { mp.forward(X, Y, {reinterpret_cast<std::int32_t*>(y.data()), 9, 4, 4}); }) == "argmax");
  CHECK(arg([&] { mp.backward(DY, DX); }) == "argmax");  // max backward needs it
  CHECK(arg([&] { mp.backward(DY, DX, A); }) == "(no error)");
  CHECK(arg([&] { ap.backward(DY, DX, A); }) == "argmax");
  CHECK(arg([&] { ap.backward(DY, {x.data(), 25, 5, 5}); }) == "dx");
  CHECK(arg([&] { ap.backward({x.data(), 9, 4, 4}, DX); }) == "dy");    // dy inside dx
}
