// Tests of ops/compress.hpp: the absolute error bound holds for every value over fuzzed inputs (finite
// values within the bound, NaN / Inf / huge values back bit for bit), the packing on inputs whose codes
// are known, and bad arguments.

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/compress.hpp>

#include "approx/sweep.hpp"
#include "support.hpp"

namespace {

using tpp::index_t;
using tpp::mat;

// Checks one round trip: every finite value within the bound (exactly, in double), every other value
// bit-identical, the padding of out untouched.
template <class P>
void round_trip(const std::vector<float>& x, index_t rows, index_t cols, index_t ld, float bound) {
  CAPTURE(rows);
  CAPTURE(cols);
  CAPTURE(bound);
  const tpp::compressed c = tpp::compress<P>(mat<const float>{x.data(), rows, cols, ld}, bound);
  const index_t old = ld + 2;
  std::vector<float> out(static_cast<std::size_t>(std::max<index_t>(rows * old, 1)), -555.0f);
  tpp::decompress<P>(c, mat<float>{out.data(), rows, cols, old});
  index_t bad = 0;
  for (index_t i = 0; i < rows; ++i) {
    for (index_t j = 0; j < cols; ++j) {
      const float a = x[static_cast<std::size_t>(i * ld + j)], b = out[static_cast<std::size_t>(i * old + j)];
      const bool ok = std::isfinite(a) ? std::fabs(double(a) - double(b)) <= double(bound)
                                       : tpp::test::bits(a) == tpp::test::bits(b);
      bad += ok ? 0 : 1;
    }
    for (index_t j = cols; j < old; ++j) bad += out[static_cast<std::size_t>(i * old + j)] == -555.0f ? 0 : 1;
  }
  CHECK(bad == 0);
  CHECK(c.ratio() > 0.0);
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("compress: the bound holds for every value over fuzzed inputs, per policy", P, compress_policies) {
  std::uint64_t seed = 1;
  for (const float bound : {0x1p-100f, 1e-7f, 1e-4f, 1e-2f, 0.5f, 3.0f})
    for (const auto& [rows, cols, ld] : {std::tuple<index_t, index_t, index_t>{1, 1, 1}, {3, 7, 9}, {17, 300, 301}, {64, 64, 64}}) {
      const std::size_t n = static_cast<std::size_t>(rows * ld);
      // uniform, a wide dynamic range, ReLU output, and any bit pattern (NaN, Inf, denormals)
      auto u = tpp::test::uniform(n, -4.0f, 4.0f, seed++);
      round_trip<P>(u, rows, cols, ld, bound);
      auto w = tpp::test::uniform(n, -30.0f, 30.0f, seed++);
      for (auto& v : w) v = std::ldexp(1.0f, int(v)) * (v < 0 ? -1.0f : 1.0f);
      round_trip<P>(w, rows, cols, ld, bound);
      for (auto& v : u) v = std::max(v, 0.0f);
      round_trip<P>(u, rows, cols, ld, bound);
      round_trip<P>(tpp::test::any_bits(n, seed++), rows, cols, ld, bound);
    }
  round_trip<P>(tpp::test::special_values(), 1, index_t(tpp::test::special_values().size()),
                index_t(tpp::test::special_values().size()), 1e-3f);
}
TEST_CASE_TEMPLATE_APPLY(compress_policies, tpp::test::op_policies);

TEST_CASE("compress: codes of known inputs (zeros, a ramp, outliers)") {
  const index_t n = 1024;
  const float bound = 0.25f;  // step 0.5
  std::vector<float> x(n, 0.0f);
  auto c = tpp::compress(mat<const float>{x.data(), 4, 256, 256}, bound);
  CHECK(c.widths == std::vector<std::uint8_t>(4, 0));  // all-zero blocks: no words
  CHECK(c.words.empty());
  CHECK(c.outlier_index.empty());
  CHECK(c.ratio() > 4.0 * double(n) / double(4 + sizeof(tpp::compressed)) * 0.999);
  // a ramp of steps: q = k, deltas 1 after the first of each block -> zig-zag 2 (2 bits), first codes
  // 256 b zig-zagged to 512 b (bit widths 10, 11, 11): widths 2, 10, 11, 11
  for (index_t k = 0; k < n; ++k) x[static_cast<std::size_t>(k)] = 0.5f * float(k);
  c = tpp::compress(mat<const float>{x.data(), 1, n, n}, bound);
  CHECK(c.widths == std::vector<std::uint8_t>{2, 10, 11, 11});
  CHECK(c.words.size() == std::size_t(4 * (2 + 10 + 11 + 11)));
  std::vector<float> y(n);
  tpp::decompress(c, mat<float>{y.data(), 1, n, n});
  CHECK(y == x);  // steps are reconstructed exactly
  // values no code can hold are outliers, back bit for bit
  x[5] = 1e30f, x[700] = std::numeric_limits<float>::quiet_NaN(), x[701] = -std::numeric_limits<float>::infinity();
  c = tpp::compress(mat<const float>{x.data(), 1, n, n}, bound);
  CHECK(c.outlier_index == std::vector<index_t>{5, 700, 701});
  tpp::decompress(c, mat<float>{y.data(), 1, n, n});
  CHECK(y[5] == 1e30f);
  CHECK(std::isnan(y[700]));
  CHECK(y[701] == -std::numeric_limits<float>::infinity());
}

TEST_CASE("compress: bad arguments throw tpp::error naming op and argument") {
  std::vector<float> x(16, 1.0f), y(16);
  const mat<const float> X{x.data(), 4, 4, 4};
  const auto arg_of = [](auto f) { return tpp::test::error_argument(f); };
  for (const float b : {0.0f, -1.0f, 0x1p-101f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()})
    CHECK(arg_of([&] { (void)tpp::compress(X, b); }) == "bound");
  CHECK(arg_of([&] { (void)tpp::compress(mat<const float>{x.data(), 4, 4, 3}, 1.0f); }) == "x.ld");
  CHECK(arg_of([&] { (void)tpp::compress(mat<const float>{nullptr, 4, 4, 4}, 1.0f); }) == "x.data");
  const auto c = tpp::compress(X, 0.1f);
  CHECK(arg_of([&] { tpp::decompress(c, mat<float>{y.data(), 2, 8, 8}); }) == "out");
  CHECK(arg_of([&] { tpp::decompress<tpp::approx::mitchell<7>>(c, mat<float>{y.data(), 4, 4, 4}); }) == "Policy");
  // a code that disagrees with itself (built or edited by hand) is rejected before it is read
  const mat<float> Y{y.data(), 4, 4, 4};
  auto bad = c;
  bad.widths.push_back(0);
  CHECK(arg_of([&] { tpp::decompress(bad, Y); }) == "c.widths");
  bad = c;
  bad.widths[0] = 40;
  CHECK(arg_of([&] { tpp::decompress(bad, Y); }) == "c.widths[0]");
  bad = c;
  bad.widths[0] = std::uint8_t(bad.widths[0] + 1);
  CHECK(arg_of([&] { tpp::decompress(bad, Y); }) == "c.words");
  bad = c;
  bad.outlier_index.push_back(16);
  bad.outlier_value.push_back(1.0f);
  CHECK(arg_of([&] { tpp::decompress(bad, Y); }) == "c.outlier_index[" + std::to_string(bad.outlier_index.size() - 1) + "]");
  bad.outlier_value.pop_back();
  CHECK(arg_of([&] { tpp::decompress(bad, Y); }) == "c.outlier_value");
  bad = c;
  bad.step = std::numeric_limits<float>::infinity();
  CHECK(arg_of([&] { tpp::decompress(bad, Y); }) == "c.step");
}
