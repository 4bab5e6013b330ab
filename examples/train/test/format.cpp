// tpp_train's number formats (format.hpp): the names, the rounding of values against scalar references
// written here (nearest: the grid point; stochastic: the documented bits, one of the two neighbours,
// unbiased over many draws), and training: fixed<16,12> with stochastic rounding learns separable data,
// and Gupta et al.'s ordering: at a coarse format round-to-nearest does not learn where stochastic does.

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "trainer.hpp"
#include "support.hpp"

using namespace tpp_train;
using tpp_train::test::synthetic;

namespace {

number_format fixed(int il, int fl, tpp::rounding r = tpp::rounding::nearest_even) {
  return {number_format::fixed, il, fl, r};
}

// The reference of <IL, FL>: the code of x (before saturation) rounded to nearest even or stochastically
// with the 16 bits r (floor((trunc(x 2^(FL+16)) + r) / 2^16), fixed_point.hpp), saturated, scaled back.
double fixed_reference(float x, int il, int fl, bool stochastic, std::uint32_t r) {
  if (std::isnan(x)) return 0.0;
  const double lo = -std::ldexp(1.0, il + fl - 1), hi = std::ldexp(1.0, il + fl - 1) - 1;
  const double t = std::clamp(double(x) * std::ldexp(1.0, fl), lo - 1, hi + 1);
  double q;
  if (stochastic) {
    const double s = std::trunc(t * 65536.0);
    q = std::floor((s + double(r)) / 65536.0);
  } else {
    q = std::nearbyint(t);
  }
  return std::clamp(q, lo, hi) * std::ldexp(1.0, -fl);
}

// Values around the grid of 2^-fl: the grid points, the ties between them, points between, and values
// beyond the range of il + fl bits, of both signs, and NaN (row-major, rows x cols).
std::vector<float> probe_values(int il, int fl, index_t count) {
  std::vector<float> v(static_cast<std::size_t>(count));
  const double step = std::ldexp(1.0, -fl), top = std::ldexp(1.0, il - 1);
  for (index_t i = 0; i < count; ++i) {
    const double k = double(i % 97) - 48.0;
    const double frac[] = {0.0, 0.5, 0.25, 0.75, 0.1, 0.9, 0.5, 1.0 / 3};
    double x = (k + frac[i % 8]) * step * (1 + double(i / 97) * 3);  // a few scales of the grid
    if (i % 41 == 7) x = top * (1.5 + double(i % 3));                  // beyond the range
    if (i % 43 == 5) x = -top - step * 0.25;
    v[std::size_t(i)] = float(x);
  }
  v[3] = std::numeric_limits<float>::quiet_NaN();
  v[4] = std::numeric_limits<float>::infinity();
  return v;
}

}  // namespace

TEST_CASE("tpp_train format: names parse, and bad ones are errors naming --format") {
  CHECK(parse_format("fp32").kind == number_format::fp32);
  CHECK(parse_format("bf16").kind == number_format::bf16);
  const number_format f = parse_format("fixed<16,14>");
  CHECK((f.kind == number_format::fixed && f.il == 16 && f.fl == 14));
  CHECK(name(f) == "fixed<16,14>");
  CHECK(name(parse_format("fixed<1,0>")) == "fixed<1,0>");
  CHECK(name(parse_format("fixed<1,31>")) == "fixed<1,31>");
  CHECK(name(parse_format("fixed<32,0>")) == "fixed<32,0>");
  CHECK(name(parse_format("bf16")) == "bf16");
  CHECK(name(parse_format("binary")) == "binary");
  CHECK(!parse_format("binary").rounds());
  for (const char* bad : {"", "fp16", "fixed", "fixed<>", "fixed<16>", "fixed<16,8", "fixed16,8>", "fixed<0,8>",
                          "fixed<16,17>", "fixed<33,0>", "fixed<a,b>", "fixed< 16,8>", "fixed<16,-1>", "fixed<16,8>x",
                          "fixed<16,,8>", "fixed<100,1>", "Binary"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(parse_format(bad), doctest::Contains("--format"), std::invalid_argument);
  }
  CHECK(parse_rounding("nearest") == tpp::rounding::nearest_even);
  CHECK(parse_rounding("stochastic") == tpp::rounding::stochastic);
  CHECK_THROWS_WITH_AS(parse_rounding("up"), doctest::Contains("--rounding"), std::invalid_argument);
}

TEST_CASE("tpp_train format: fixed point rounds as the scalar reference, nearest and stochastic") {
  // 16 bits (the op as it is), narrower (the op, then clamped), wider (the format's own loop)
  for (const auto& [il, fl] : {std::pair{4, 12}, {3, 5}, {1, 0}, {8, 7}, {12, 8}, {16, 12}, {2, 20}}) {
    for (const bool stochastic : {false, true}) {
      CAPTURE(il);
      CAPTURE(fl);
      CAPTURE(stochastic);
      const index_t rows = 5, cols = 83, ld = 87, row_offset = 9;  // a tail past the vectors, ld > cols
      std::vector<float> x(std::size_t(rows * ld), -7.0f);
      const std::vector<float> v = probe_values(il, fl, rows * cols);
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) x[std::size_t(i * ld + j)] = v[std::size_t(i * cols + j)];
      const std::vector<float> before = x;
      quantizer q(fixed(il, fl));
      const std::uint64_t key = 12345;
      q.apply({x.data(), rows, cols, ld}, key, row_offset,
              stochastic ? tpp::rounding::stochastic : tpp::rounding::nearest_even);
      int mismatches = 0;
      for (index_t i = 0; i < rows; ++i) {
        for (index_t j = 0; j < cols; ++j) {
          const float in = before[std::size_t(i * ld + j)], out = x[std::size_t(i * ld + j)];
          // held in fp32: a grid value of more than 24 significant bits (formats wider than 24 bits) rounds
          const auto want = float(fixed_reference(in, il, fl, stochastic, tpp::rounding_bits(key, row_offset + i, j)));
          if (out != want && mismatches++ < 5) {
            CAPTURE(in);
            CHECK(out == want);
          }
          if (stochastic && !std::isnan(in)) {  // one of the two grid neighbours (or the bound it saturates to)
            const double step = std::ldexp(1.0, -fl), top = std::ldexp(1.0, il - 1);
            const double lo = std::floor(std::clamp(double(in), -top, top - step) / step) * step;
            CHECK((out == float(lo) || out == float(lo + step)));
          }
        }
        for (index_t j = cols; j < ld; ++j) CHECK(x[std::size_t(i * ld + j)] == -7.0f);  // padding untouched
      }
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("tpp_train format: stochastic rounding is unbiased over many draws and reproducible from its key") {
  const index_t n = 1 << 16;
  for (const auto& [il, fl] : {std::pair{8, 8}, {3, 5}, {12, 8}}) {
    for (const double x : {0.3, -0.3, 0.0101, -1.77, 1.0 / 3}) {
      CAPTURE(il);
      CAPTURE(fl);
      CAPTURE(x);
      const double step = std::ldexp(1.0, -fl), lo = std::floor(x / step) * step;
      std::vector<float> v(std::size_t(n), static_cast<float>(x));
      quantizer q(fixed(il, fl, tpp::rounding::stochastic));
      q.apply({v.data(), 64, n / 64, n / 64}, 777, 0, tpp::rounding::stochastic);
      double sum = 0;
      index_t ups = 0;
      for (float y : v) {
        CHECK((double(y) == lo || double(y) == lo + step));
        sum += y, ups += double(y) == lo + step;
      }
      // mean of n draws of lo or lo + step, p = frac: within 5 standard deviations, plus the rounding's own
      // bias (at most 2^-16 of a step)
      const double p = (double(float(x)) - lo) / step, sd = step * std::sqrt(p * (1 - p) / double(n));
      CHECK(std::abs(sum / double(n) - double(float(x))) <= 5 * sd + step * 0x1p-16);
      CHECK(ups > 0);
      std::vector<float> again(std::size_t(n), static_cast<float>(x)), other(std::size_t(n), static_cast<float>(x));
      q.apply({again.data(), 64, n / 64, n / 64}, 777, 0, tpp::rounding::stochastic);
      q.apply({other.data(), 64, n / 64, n / 64}, 778, 0, tpp::rounding::stochastic);
      CHECK(again == v);
      CHECK(other != v);
    }
  }
}

TEST_CASE("tpp_train format: bf16 rounds to nearest even, or stochastically to a bracketing bf16, unbiased") {
  const index_t n = 4096;
  std::vector<float> x(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    x[std::size_t(i)] = float((double(i) - 2000.5) * 0.0123 * (1 + i % 7) + 1.0 / 3);
  for (const bool stochastic : {false, true}) {
    std::vector<float> y = x;
    quantizer q({number_format::bf16});
    q.apply({y.data(), 32, n / 32, n / 32}, 99, 4, stochastic ? tpp::rounding::stochastic : tpp::rounding::nearest_even);
    for (index_t i = 0; i < n; ++i) {
      const std::uint32_t u = std::bit_cast<std::uint32_t>(x[std::size_t(i)]);
      const std::uint32_t r = tpp::rounding_bits(99, 4 + i / (n / 32), i % (n / 32));
      const std::uint32_t want = stochastic ? (u + r) & 0xffff0000u : (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
      CHECK(std::bit_cast<std::uint32_t>(y[std::size_t(i)]) == want);
    }
  }
  const float v = 1.0f + 0x1p-9f;  // a quarter of the way from 1 to the next bf16 (1 + 2^-7)
  std::vector<float> many(1 << 16, v);
  quantizer q({number_format::bf16});
  q.apply({many.data(), 256, 256, 256}, 5, 0, tpp::rounding::stochastic);
  double sum = 0;
  for (float y : many) {
    CHECK((y == 1.0f || y == 1.0f + 0x1p-7f));
    sum += y;
  }
  CHECK(std::abs(sum / double(many.size()) - double(v)) <= 5 * 0x1p-7 * std::sqrt(0.25 * 0.75 / 65536.0));
}

TEST_CASE("tpp_train format: fp32 leaves values alone") {
  std::vector<float> x{0.1f, -3.3f, 1e-30f};
  const std::vector<float> before = x;
  quantizer q;
  q.apply(x, 1, tpp::rounding::stochastic);
  CHECK(x == before);
}

TEST_CASE("tpp_train format: fixed<16,12> with stochastic rounding learns separable data to >= 95%") {
  const dataset d = synthetic(1280, 500, 11);
  for (model_kind m : {model_kind::lenet300, model_kind::lenet5}) {
    CAPTURE(tpp_train::name(m));
    config c;
    c.model = m, c.epochs = 2, c.batch = 32, c.lr = 0.02;
    c.format = fixed(16, 12, tpp::rounding::stochastic);
    const run_result r = trainers().at("exact")(c, d);
    REQUIRE(r.epochs.size() == 2);
    CHECK(r.test_accuracy() >= 0.95);
    const run_result again = trainers().at("exact")(c, d);  // reproducible
    CHECK(again.epochs[1].train_loss == r.epochs[1].train_loss);
  }
}

TEST_CASE("tpp_train format: at a coarse format round-to-nearest fails to learn where stochastic rounding does") {
  // Gupta et al. 2015: small updates and gradients round away to nearest; stochastic rounding keeps them
  // in expectation.
  const dataset d = synthetic(1280, 500, 11);
  config c;
  c.model = model_kind::lenet300, c.epochs = 2, c.batch = 32, c.lr = 0.02;
  c.format = fixed(16, 6, tpp::rounding::nearest_even);
  const run_result nearest = trainers().at("exact")(c, d);
  c.format.rounding = tpp::rounding::stochastic;
  const run_result stochastic = trainers().at("exact")(c, d);
  MESSAGE("nearest: loss " << nearest.epochs[0].train_loss << " -> " << nearest.epochs[1].train_loss << ", accuracy "
                           << nearest.test_accuracy() << "; stochastic: loss " << stochastic.epochs[0].train_loss
                           << " -> " << stochastic.epochs[1].train_loss << ", accuracy " << stochastic.test_accuracy());
  CHECK(nearest.epochs[1].train_loss > 0.9 * std::log(10.0));  // no better than chance (ln 10)
  CHECK(stochastic.epochs[1].train_loss < 0.5 * std::log(10.0));
  CHECK(stochastic.test_accuracy() >= 0.9);
  CHECK(nearest.test_accuracy() < 0.5);
}

TEST_CASE("tpp_train format binary: which layers binarize, the scale, sign and the straight-through mask") {
  const architecture l5 = make_architecture(model_kind::lenet5, 28, 28, 10);
  const architecture l3 = make_architecture(model_kind::lenet300, 28, 28, 10);
  std::vector<bool> b5, b3;
  for (std::size_t i = 0; i < l5.layers.size(); ++i) b5.push_back(binary_weights(l5, i));
  for (std::size_t i = 0; i < l3.layers.size(); ++i) b3.push_back(binary_weights(l3, i));
  // conv, pool, conv, pool, fc, fc, fc: the first conv and the last fc stay real, pools have no weights
  CHECK(b5 == std::vector<bool>{false, false, true, false, true, true, false});
  CHECK(b3 == std::vector<bool>{false, true, false});
  CHECK(binary_scale(l3.layers[1]) == 0x1p-4f);  // 1/sqrt(300) = 0.058: nearest power of two 2^-4
  CHECK(binary_scale(l5.layers[2]) == 0x1p-4f);  // fan_in 150
  std::vector<float> p(std::size_t(l3.parameters));
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = float(int(i % 7) - 3) * 0.4f;
  std::vector<float> wb;
  binarize_weights(l3, p, wb);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const bool in_binary = index_t(i) >= l3.layers[1].weights && index_t(i) < l3.layers[1].bias;
    CHECK(wb[i] == (in_binary ? (p[i] < 0 ? -0x1p-4f : 0x1p-4f) : p[i]));
  }
  std::vector<float> q = p;
  clip_binary_weights(l3, q);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const bool in_binary = index_t(i) >= l3.layers[1].weights && index_t(i) < l3.layers[1].bias;
    CHECK(q[i] == (in_binary ? std::clamp(p[i], -1.0f, 1.0f) : p[i]));
  }
  const std::vector<float> x{-2.0f, -1.0f, -0.5f, -0.0f, 0.0f, 0.25f, 1.0f, 1.5f};
  std::vector<float> y(x.size()), dy(x.size(), 3.0f);
  sign_activation(x.data(), y.data(), index_t(x.size()));
  straight_through(x.data(), dy.data(), index_t(x.size()));
  CHECK(y == std::vector<float>{-1, -1, -1, 1, 1, 1, 1, 1});
  CHECK(dy == std::vector<float>{0, 3, 3, 3, 3, 3, 3, 0});
}

TEST_CASE("tpp_train format binary: a QNN learns separable data") {
  const dataset d = synthetic(1280, 500, 11);
  for (model_kind m : {model_kind::lenet300, model_kind::lenet5}) {
    config c;
    c.model = m, c.epochs = 2, c.batch = 32, c.lr = 0.02;
    c.format = {number_format::binary};
    const run_result r = trainers().at("exact")(c, d);
    MESSAGE(std::string(tpp_train::name(m)) << " binary: loss " << r.epochs[0].train_loss << " -> " << r.epochs[1].train_loss
                               << ", accuracy " << r.test_accuracy());
    CHECK(r.epochs[1].train_loss < r.epochs[0].train_loss);
    CHECK(r.test_accuracy() >= 0.9);
  }
}

TEST_CASE("tpp_train format binary: inference through binary_gemm equals the float GEMMs' forward exactly") {
  using exact = tpp::approx::exact;
  for (model_kind m : {model_kind::lenet300, model_kind::lenet5}) {
    CAPTURE(std::string(tpp_train::name(m)));
    const architecture a = make_architecture(m, 28, 28, 10);
    std::vector<float> params(std::size_t(a.parameters));
    initialise(a, 3, params);
    for (std::size_t i = 0; i < params.size(); i += 3) params[i] *= -7.0f;  // some latent weights beyond [-1, 1]
    const index_t batch = 13;
    std::vector<float> x(std::size_t(batch * a.input_size()));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(2.0 * uniform01(9, 4, i) - 1.0);
    network<exact, exact> net(a, batch, {number_format::binary});
    const auto floats = net.forward(x.data(), params);
    const std::vector<float> want(floats.begin(), floats.end());
    net.set_binary_gemm(true);
    const auto got = net.forward(x.data(), params);
    CHECK(net.binary_gemm_calls() == (m == model_kind::lenet300 ? 1 : 2));  // fc 300-100; fc 400-120, 120-84
    CHECK(std::vector<float>(got.begin(), got.end()) == want);
    double spread = 0;
    for (float v : want) spread += std::abs(v - want[0]);
    CHECK(spread > 0);  // the logits are not all one value
  }
}
