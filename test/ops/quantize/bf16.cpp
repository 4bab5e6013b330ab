// ops/quantize/bf16.hpp: round to nearest equals to_bf16_rne on every value class; stochastic rounding gives
// one of the two neighbours, keeps specials, is reproducible, tiling-independent and unbiased within 5 sigma;
// bad arguments.

#include <tpp/ops/quantize/bf16.hpp>

#include "ops/quantize/support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::quant;
using test::padded;

std::vector<bf16> bf16_sr(const std::vector<float>& x, index_t M, index_t N, std::uint64_t seed) {
  std::vector<bf16> y(x.size());
  round_to_bf16(view(x.data(), M, N), view(y.data(), M, N), rounding::stochastic, {seed, 0, 0});
  return y;
}

TEST_CASE("bf16: round to nearest even equals to_bf16_rne for every value class") {
  auto v = test::special_values();
  const auto r = test::any_bits(4096, 3);
  v.insert(v.end(), r.begin(), r.end());
  const index_t n = index_t(v.size());
  std::vector<bf16> y(v.size());
  round_to_bf16(view(v.data(), 1, n), view(y.data(), 1, n));
  int bad = 0;
  for (std::size_t k = 0; k < v.size(); ++k) bad += y[k] != to_bf16_rne(v[k]);
  CHECK(bad == 0);
}

TEST_CASE("bf16, stochastic: one of the two neighbours, specials kept, reproducible, tiling-independent") {
  auto v = test::special_values();
  const auto r = test::any_bits(8000, 4);
  v.insert(v.end(), r.begin(), r.end());
  v.resize(8000);
  const index_t M = 80, N = 100;
  const auto y = bf16_sr(v, M, N, 17);
  int bad = 0;
  for (std::size_t k = 0; k < v.size(); ++k) {
    const float x = v[k], got = to_float(y[k]);
    if (std::isnan(x)) {
      bad += !std::isnan(got) || std::signbit(got) != std::signbit(x);
      continue;
    }
    // the neighbours: truncation toward zero and the next bf16 away from zero (bit patterns are monotonic in
    // magnitude); a bf16 x stays exactly
    const bf16 down = to_bf16_rz(x), upn = bf16::from_bits(std::uint16_t(down.bits + 1));
    const bool exact = to_float(down) == x && std::signbit(to_float(down)) == std::signbit(x);
    if (exact ? y[k] != down : (y[k] != down && y[k] != upn)) ++bad;
    // never Inf from a finite value at or below the largest finite bf16
    if (std::isinf(got) && std::isfinite(x) && std::abs(x) <= 0x1.fep127f) ++bad;
  }
  CHECK(bad == 0);
  CHECK(bf16_sr(v, M, N, 17) == y);
  CHECK(bf16_sr(v, M, N, 18) != y);
  std::vector<bf16> tiled(y.size());
  for (index_t i0 = 0; i0 < M; i0 += 9)
    for (index_t j0 = 0; j0 < N; j0 += 31) {
      const index_t rr = std::min<index_t>(9, M - i0), c = std::min<index_t>(31, N - j0);
      round_to_bf16(view(v.data() + i0 * N + j0, rr, c, N), view(tiled.data() + i0 * N + j0, rr, c, N),
                    rounding::stochastic, {17, i0, j0});
    }
  CHECK(tiled == y);
  // the largest finite bf16 stays; FLT_MAX goes to it or to Inf; -0 stays -0
  const std::vector<float> edge(64 * 3, 0.0f);
  std::vector<float> e = edge;
  for (int k = 0; k < 64; ++k) {
    e[std::size_t(k)] = 0x1.fep127f;
    e[std::size_t(64 + k)] = std::numeric_limits<float>::max();
    e[std::size_t(128 + k)] = -0.0f;
  }
  const auto ye = bf16_sr(e, 3, 64, 1);
  int inf_count = 0;
  for (int k = 0; k < 64; ++k) {
    CHECK(to_float(ye[std::size_t(k)]) == 0x1.fep127f);
    const float g = to_float(ye[std::size_t(64 + k)]);
    CHECK((g == 0x1.fep127f || g == inf));
    inf_count += g == inf;
    CHECK(ye[std::size_t(128 + k)].bits == 0x8000);
  }
  CHECK(inf_count > 0);  // P(Inf) = (2^16 - 1) / 2^16 per draw: all 64 finite has probability 2^-1024 * ...
}

TEST_CASE("bf16, stochastic: unbiased within 5 sigma (the probability is exactly the discarded fraction)") {
  // x = a bf16 value plus f ulps, f = (low 16 bits) / 2^16: each draw rounds up with probability exactly f, so
  // the mean of (y - x) / ulp over n draws is 0 in expectation with standard deviation sqrt(f (1 - f) / n).
  const index_t M = 128, N = 512;
  for (const std::uint32_t low : {0x8000u, 0x4ccdu, 0x0100u, 0xff00u}) {
    for (const std::uint32_t hi : {0x3f800000u, 0xc2c80000u, 0x00010000u}) {  // 1, -100, a denormal
      const float x = std::bit_cast<float>(hi | low);
      const double ulp = double(to_float(bf16::from_bits(std::uint16_t((hi >> 16) + 1)))) - double(std::bit_cast<float>(hi));
      const double f = double(low) / 65536.0;
      INFO("x = ", test::hex(x));
      const auto y = bf16_sr(std::vector<float>(std::size_t(M * N), x), M, N, 1234);
      double mean = 0;
      for (auto b : y) mean += (double(to_float(b)) - double(x)) / ulp;
      mean /= double(M * N);
      CHECK(std::abs(mean) <= 5 * std::sqrt(f * (1 - f) / double(M * N)));
    }
  }
}

TEST_CASE("bf16: bad arguments throw tpp::error naming op and argument") {
  float xb[64] = {};
  const mat<const float> x{xb, 2, 4, 4};
  // bf16
  bf16 hb[8];
  CHECK_THROWS_WITH_AS(round_to_bf16(x, mat<bf16>{hb, 2, 4, 4}, rounding::stochastic, {0, 0, -2}),
                       "tpp::round_to_bf16: col_offset is negative (-2)", error);
  CHECK_THROWS_AS(round_to_bf16(x, mat<bf16>{reinterpret_cast<bf16*>(xb), 2, 4, 4}), error);
}

}  // namespace
