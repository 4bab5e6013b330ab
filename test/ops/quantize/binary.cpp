// ops/quantize/binary.hpp: binarize / ternarize bits and scales against a double reference, unpack round
// trips, padding bits zero; binary_gemm equals the int64 +-1 dot product exactly (K tails masked, edge M / N,
// K = 0); bad arguments and aliasing.

#include <tpp/ops/quantize/binary.hpp>

#include "ops/quantize/support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::quant;
using test::padded;

TEST_CASE("binarize / ternarize: bits, scales vs a double reference, unpack round trip, padding bits zero") {
  for (const index_t cols : {index_t(1), index_t(63), index_t(64), index_t(65), index_t(200), simd::width<> + 1}) {
    INFO("cols ", cols);
    const index_t rows = 4, words = packed_words(cols);
    // values on the grid k / 64, |k| <= 255: every fp32 partial sum of <= 64 terms is exact, so mean|x| is
    // float(exact sum / n) and the ternary threshold comparison is reproducible here exactly
    std::mt19937_64 g{std::uint64_t(cols)};
    std::uniform_int_distribution<int> d(-255, 255);
    padded<float> x(rows, cols, 3);
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < cols; ++j) x(i, j) = float(d(g)) / 64.0f;
    x(0, 0) = 0.0f;
    if (cols > 1) x(0, 1) = -0.0f;
    padded<std::uint64_t> bits(rows, words, 1), sgn(rows, words, 0), nz(rows, words, 2);
    std::vector<float> bs(static_cast<std::size_t>(rows)), ts(static_cast<std::size_t>(rows));
    binarize(x.cm(), bits.m(), bs);
    const ternarize_params tp{0.7f};
    ternarize(x.cm(), sgn.m(), nz.m(), ts, tp);
    padded<float> ub(rows, cols, 1), ut(rows, cols, 0);
    unpack_binary(bits.cm(), bs, ub.m());
    unpack_ternary(sgn.cm(), nz.cm(), ts, ut.m());
    int bad = 0;
    for (index_t i = 0; i < rows; ++i) {
      double s = 0;
      for (index_t j = 0; j < cols; ++j) s += std::abs(x.value(i, j));
      const float mean = float(s / double(cols));
      bad += bs[std::size_t(i)] != mean;
      const float delta = tp.threshold * mean;
      double kept = 0;
      index_t count = 0;
      for (index_t j = 0; j < cols; ++j) {
        const float v = x(i, j);
        const bool bit = (bits(i, j / 64) >> (j % 64)) & 1, sbit = (sgn(i, j / 64) >> (j % 64)) & 1,
                   nbit = (nz(i, j / 64) >> (j % 64)) & 1;
        bad += bit != (v < 0);
        bad += nbit != (std::abs(v) > delta);
        bad += sbit != (nbit && v < 0);
        if (nbit) {
          kept += std::abs(v);
          ++count;
        }
        bad += ub(i, j) != (v < 0 ? -mean : mean);
      }
      const float alpha = count ? float(kept / double(count)) : 0.0f;
      bad += ts[std::size_t(i)] != alpha;
      for (index_t j = 0; j < cols; ++j) {
        const float v = x(i, j);
        bad += ut(i, j) != (std::abs(v) > delta ? (v < 0 ? -alpha : alpha) : 0.0f);
      }
      // padding bits of the last word are zero
      const std::uint64_t pad_mask = cols % 64 ? ~((std::uint64_t(1) << (cols % 64)) - 1) : 0;
      bad += (bits(i, words - 1) & pad_mask) != 0;
      bad += (sgn(i, words - 1) & pad_mask) != 0;
      bad += (nz(i, words - 1) & pad_mask) != 0;
    }
    CHECK(bad == 0);
    CHECK(bits.padding_intact());
    CHECK(nz.padding_intact());
  }
}

TEST_CASE("binarize: scale = mean|x| within 64 u of the double mean for arbitrary values; no scale requested") {
  // fp32 sums of at most 64 terms per word: each term passes <= 63 roundings, so |S - S_exact| <= 63u/(1-63u) Σ|x|;
  // the double merge and the final division add < 2u: |scale - mean| <= 66u mean.
  const index_t rows = 3, cols = 1000;
  const auto v = test::uniform(std::size_t(rows * cols), -7.0f, 3.0f, 8);
  std::vector<std::uint64_t> bits(static_cast<std::size_t>(rows * packed_words(cols)));
  std::vector<float> s(rows);
  binarize(view(v.data(), rows, cols), view(bits.data(), rows, packed_words(cols)), s);
  for (index_t i = 0; i < rows; ++i) {
    double m = 0;
    for (index_t j = 0; j < cols; ++j) m += std::abs(double(v[std::size_t(i * cols + j)]));
    m /= double(cols);
    CHECK(std::abs(s[std::size_t(i)] - m) <= 66 * u * m);
  }
  std::vector<std::uint64_t> bits2(bits.size());
  binarize(view(v.data(), rows, cols), view(bits2.data(), rows, packed_words(cols)));
  CHECK(bits2 == bits);
  std::vector<float> ones(static_cast<std::size_t>(rows * cols));
  unpack_binary(view<const std::uint64_t>(bits.data(), rows, packed_words(cols)), {}, view(ones.data(), rows, cols));
  for (std::size_t k = 0; k < v.size(); ++k) CHECK(ones[k] == (v[k] < 0 ? -1.0f : 1.0f));
}

TEST_CASE("binary_gemm: equals the int64 +-1 dot product exactly, K tails masked, edge M / N") {
  std::mt19937_64 g(2024);
  for (const index_t K : {index_t(1), index_t(63), index_t(64), index_t(65), index_t(128), index_t(200), index_t(511),
                          index_t(513), index_t(1000)})
    for (const auto& mn : {std::pair<index_t, index_t>{1, 1}, {1, 7}, {5, 1}, {3, 13}, {7, 5}, {13, 31}, {8, 8}}) {
      const index_t M = mn.first, N = mn.second;
      INFO("M ", M, " N ", N, " K ", K);
      const index_t words = packed_words(K);
      // random bits everywhere, including the padding bits past K (the kernel must mask them)
      std::vector<std::uint64_t> a(static_cast<std::size_t>(M * (words + 1))), b(static_cast<std::size_t>(N * (words + 2)));
      for (auto& w : a) w = g();
      for (auto& w : b) w = g();
      const auto bit = [](const std::vector<std::uint64_t>& m, index_t ld, index_t r, index_t k) {
        return (m[std::size_t(r * ld + k / 64)] >> (k % 64)) & 1;
      };
      padded<std::int32_t> c(M, N, 3);
      binary_gemm(view<const std::uint64_t>(a.data(), M, words, words + 1),
                  view<const std::uint64_t>(b.data(), N, words, words + 2), c.m(), K);
      int bad = 0;
      for (index_t i = 0; i < M; ++i)
        for (index_t j = 0; j < N; ++j) {
          std::int64_t dot = 0;
          for (index_t k = 0; k < K; ++k) dot += (bit(a, words + 1, i, k) ? -1 : 1) * (bit(b, words + 2, j, k) ? -1 : 1);
          bad += c(i, j) != dot;
        }
      CHECK(bad == 0);
      CHECK(c.padding_intact());
    }
  // from binarize: C = sign(X) sign(Y)^T with X (M, K), Y (N, K)
  const index_t M = 9, N = 11, K = 150;
  const auto x = test::uniform(std::size_t(M * K), -1, 1, 1), y = test::uniform(std::size_t(N * K), -1, 1, 2);
  std::vector<std::uint64_t> pa(static_cast<std::size_t>(M * packed_words(K))), pb(static_cast<std::size_t>(N * packed_words(K)));
  binarize(view(x.data(), M, K), view(pa.data(), M, packed_words(K)));
  binarize(view(y.data(), N, K), view(pb.data(), N, packed_words(K)));
  std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
  binary_gemm(view<const std::uint64_t>(pa.data(), M, packed_words(K)), view<const std::uint64_t>(pb.data(), N, packed_words(K)),
              view(c.data(), M, N), K);
  int bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      std::int64_t dot = 0;
      for (index_t k = 0; k < K; ++k)
        dot += (x[std::size_t(i * K + k)] < 0 ? -1 : 1) * (y[std::size_t(j * K + k)] < 0 ? -1 : 1);
      bad += c[std::size_t(i * N + j)] != dot;
    }
  CHECK(bad == 0);
  // K = 0: every dot product is empty
  std::int32_t c0[4] = {9, 9, 9, 9};
  binary_gemm(mat<const std::uint64_t>{nullptr, 2, 0, 0}, mat<const std::uint64_t>{nullptr, 2, 0, 0}, view(c0, 2, 2), 0);
  CHECK(c0[0] == 0);
  CHECK(c0[3] == 0);
}

TEST_CASE("binary: bad arguments throw tpp::error naming op and argument") {
  float xb[64] = {};
  float y[8];
  const mat<const float> x{xb, 2, 4, 4};
  // binary / ternary / binary GEMM
  std::uint64_t w[8] = {};
  float sc[4];
  CHECK_THROWS_WITH_AS(binarize(x, mat<std::uint64_t>{w, 2, 2, 2}), "tpp::binarize: bits shape (2x2) differs from the packed (2x1)",
                       error);
  CHECK_THROWS_WITH_AS(binarize(x, mat<std::uint64_t>{w, 2, 1, 1}, std::span<float>(sc, 3)),
                       "tpp::binarize: scale has 3 values, not rows (2)", error);
  CHECK_THROWS_WITH_AS(ternarize(x, mat<std::uint64_t>{w, 2, 1, 1}, mat<std::uint64_t>{w + 2, 2, 1, 1}, std::span<float>(sc, 2), {-1.0f}),
                       "tpp::ternarize: threshold (-1.000000) is not finite and >= 0", error);
  CHECK_THROWS_AS(ternarize(x, mat<std::uint64_t>{w, 2, 1, 1}, mat<std::uint64_t>{w + 1, 2, 1, 1}, std::span<float>(sc, 2)),
                  error);  // the planes overlap
  CHECK_THROWS_AS(unpack_binary(mat<const std::uint64_t>{w, 2, 1, 1}, {}, mat<float>{y, 2, 65, 65}), error);
  std::int32_t c[16];
  CHECK_THROWS_WITH_AS((binary_gemm_kernel(2, 2, -1)), "tpp::binary_gemm: k is negative (-1)", error);
  CHECK_THROWS_WITH_AS(binary_gemm(mat<const std::uint64_t>{w, 2, 1, 1}, mat<const std::uint64_t>{w, 2, 1, 1},
                                   mat<std::int32_t>{c, 2, 2, 2}, 65),
                       "tpp::binary_gemm: a shape (2x1) differs from the packed (m, words(k)) (2x2)", error);
  CHECK_THROWS_AS(binary_gemm(mat<const std::uint64_t>{w, 2, 1, 1}, mat<const std::uint64_t>{w, 3, 1, 1},
                              mat<std::int32_t>{c, 2, 2, 2}, 64),
                  error);
  CHECK_THROWS_AS(binary_gemm(mat<const std::uint64_t>{w, 2, 1, 1}, mat<const std::uint64_t>{w, 2, 1, 1},
                              mat<std::int32_t>{nullptr, 2, 2, 2}, 64),
                  error);
  // the scales against the views
  CHECK_THROWS_WITH_AS(binarize(x, mat<std::uint64_t>{w, 2, 1, 1}, std::span<float>(xb + 3, 2)),
                       doctest::Contains("tpp::binarize: x overlaps scale"), error);
  CHECK_THROWS_WITH_AS(binarize(x, mat<std::uint64_t>{w, 2, 1, 1}, std::span<float>(reinterpret_cast<float*>(w + 1), 2)),
                       doctest::Contains("tpp::binarize: bits overlaps scale"), error);
  CHECK_THROWS_WITH_AS(ternarize(x, mat<std::uint64_t>{w, 2, 1, 1}, mat<std::uint64_t>{w + 2, 2, 1, 1},
                                 std::span<float>(reinterpret_cast<float*>(w + 3), 2)),
                       doctest::Contains("tpp::ternarize: nonzero overlaps scale"), error);
  CHECK_THROWS_WITH_AS(ternarize(x, mat<std::uint64_t>{w, 2, 1, 1}, mat<std::uint64_t>{w + 2, 2, 1, 1}, std::span<float>(xb, 2)),
                       doctest::Contains("tpp::ternarize: x overlaps scale"), error);
  CHECK_THROWS_WITH_AS(unpack_binary(mat<const std::uint64_t>{w, 2, 1, 1}, std::span<const float>(y + 1, 2), mat<float>{y, 2, 3, 3}),
                       doctest::Contains("tpp::unpack_binary: scale overlaps y"), error);
  CHECK_THROWS_WITH_AS(unpack_ternary(mat<const std::uint64_t>{w, 2, 1, 1}, mat<const std::uint64_t>{w + 2, 2, 1, 1},
                                      std::span<const float>(y + 4, 2), mat<float>{y, 2, 3, 3}),
                       doctest::Contains("tpp::unpack_ternary: scale overlaps y"), error);
}

}  // namespace
