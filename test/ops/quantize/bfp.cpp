// ops/quantize/bfp.hpp: shared exponents and values against a double (frexp) reference, the error bounds
// (step / 2 nearest, < step truncate), encode / decode round trips; tiny, denormal, zero, huge and non-finite
// blocks; whole groups of 16 blocks (the transposed reduction) with blocks of every kind side by side;
// streaming stores; bf16 in / out and in place; bad arguments.

#include <tpp/ops/quantize/bfp.hpp>

#include "ops/quantize/support.hpp"

namespace {

using namespace tpp;
using namespace tpp::test::quant;
using test::padded;

// Independent reference (double, frexp): the shared exponent and the value of each element.
struct bfp_ref {
  int e;
  double step;
};
bfp_ref bfp_block_ref(const float* x, index_t len, int m, bool truncate) {
  double mx = 0;
  for (index_t k = 0; k < len; ++k)
    if (std::isfinite(x[k])) mx = std::max(mx, std::abs(double(x[k])));
  int e = m - 150;
  if (mx > 0) {
    int ex = 0;
    std::frexp(mx, &ex);  // mx = f 2^ex, f in [0.5, 1): floor(log2 mx) = ex - 1
    e = std::max(ex - 1, m - 150);
    if (!truncate && std::nearbyint(std::ldexp(mx, m - 1 - e)) >= std::ldexp(1.0, m)) ++e;
  }
  e = std::min(e, 127);
  return {e, std::ldexp(1.0, e - m + 1)};
}

double bfp_value_ref(double x, const bfp_ref& r, int m, bool truncate) {
  if (!std::isfinite(x)) return x;
  const double t = std::abs(x) / r.step;
  const double k = std::min(truncate ? std::floor(t) : std::nearbyint(t), std::ldexp(1.0, m) - 1);
  return std::copysign(k * r.step, x);
}

void check_bfp(index_t rows, index_t cols, index_t pad, bfp_params p, const std::vector<float>& v) {
  INFO(rows, "x", cols, " B ", p.block, " m ", p.mantissa_bits, " truncate ", p.truncate);
  padded<float> x(rows, cols, pad);
  x.fill(v);
  padded<float> y(rows, cols, pad);
  bfp_fake_quant(x.cm(), y.m(), p);
  const index_t nb = bfp_blocks(cols, p.block);
  padded<std::int16_t> code(rows, cols, pad), ex(rows, nb, 1);
  padded<float> dec(rows, cols, pad);
  const bool encodable = p.mantissa_bits <= 15;
  if (encodable) {
    bfp_quantize(x.cm(), code.m(), ex.m(), p);
    bfp_dequantize(code.cm(), ex.cm(), dec.m(), p);
  }
  int bad = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t b = 0; b < nb; ++b) {
      const index_t j0 = b * p.block, len = std::min(p.block, cols - j0);
      std::vector<float> blk(static_cast<std::size_t>(len));
      for (index_t k = 0; k < len; ++k) blk[std::size_t(k)] = x(i, j0 + k);
      const bfp_ref r = bfp_block_ref(blk.data(), len, p.mantissa_bits, p.truncate);
      if (encodable && ex(i, b) != r.e) ++bad;
      for (index_t k = 0; k < len; ++k) {
        const double xv = x.value(i, j0 + k), want = bfp_value_ref(xv, r, p.mantissa_bits, p.truncate);
        const double got = y.value(i, j0 + k);
        if (std::isnan(xv) ? !test::same_bits(y(i, j0 + k), x(i, j0 + k)) : got != want) ++bad;
        // the error bound: half a step (nearest) or under one step (truncate), unless saturated at 2^128
        if (std::isfinite(xv) && r.e < 127 && !(std::abs(got - xv) <= (p.truncate ? r.step : r.step / 2))) ++bad;
        if (std::isfinite(xv) && !p.truncate && r.e == 127 && !(std::abs(got - xv) < r.step)) ++bad;
        if (encodable && std::isfinite(xv)) {
          if (double(dec(i, j0 + k)) != got) ++bad;  // decode(encode) = fake-quant
          if (std::abs(code(i, j0 + k)) > (1 << p.mantissa_bits) - 1) ++bad;
        }
      }
    }
  CHECK(bad == 0);
  CHECK(y.padding_intact());
  CHECK(code.padding_intact());
  CHECK(ex.padding_intact());
}

TEST_CASE("bfp: shared exponent, error <= step / 2 (nearest) or < step (truncate), encode / decode round trip") {
  const index_t W = simd::width<>;
  for (const bool truncate : {false, true})
    for (const int m : {1, 3, 7, 8, 15, 24})
      for (const index_t B : {index_t(1), index_t(3), W, index_t(16), W + 1, index_t(64)}) {
        const index_t rows = 5, cols = 3 * B + 2;
        check_bfp(rows, cols, 2, {B, m, truncate}, spread(static_cast<std::size_t>(rows * cols), 12, std::uint64_t(m * 100 + B)));
      }
}

TEST_CASE("bfp: tiny, denormal, zero, huge and non-finite blocks") {
  for (const bool truncate : {false, true})
    for (const int m : {1, 4, 8, 15}) {
      std::vector<float> v = {0.0f,  -0.0f, 0.0f,          0.0f,            // zeros
                              1e-45f, 3e-45f, -1e-44f, 2e-39f,              // denormals
                              0x1.fffffep127f, -1e38f, 1.0f, 3e38f,         // near FLT_MAX: rounds to 2^128
                              inf,  1.0f,  -2.5f,         qnan,             // non-finite pass through
                              0x1.fep0f, 0x1.ffp0f, 0x1.f8p0f, -0x1.fcp0f}; // maxima that round up at m bits
      check_bfp(1, index_t(v.size()), 0, {4, m, truncate}, v);
      // maxima halfway between two m-bit values, 2 - 2^-m times 2^k for exponent fields of either parity
      // (m = 1: the tie rounds up, the kept bit being the implicit one), no subnormal in the row
      const float t = 2.0f - std::ldexp(1.0f, -m);
      const std::vector<float> ties = {t,      1.0f, 0.0f,  0.25f, -2 * t, 1.0f,  0.5f, 0.0f,
                                       4 * t,  -t,   0.0f,  3.0f,  std::ldexp(t, -126), 0x1p-126f, 0.0f, -0.0f};
      check_bfp(1, index_t(ties.size()), 0, {4, m, truncate}, ties);
    }
  // non-finite codes: Inf -> +-(2^m - 1), NaN -> 0; fake-quant passes them through
  const float x[] = {inf, -inf, qnan, 1.0f};
  std::int8_t c[4];
  std::int16_t e[1];
  bfp_quantize(view(x, 1, 4), view(c, 1, 4), view(e, 1, 1), {4, 5, false});
  CHECK(int(c[0]) == 31);
  CHECK(int(c[1]) == -31);
  CHECK(int(c[2]) == 0);
  CHECK(int(c[3]) == 16);
  CHECK(e[0] == 0);
  float y[4];
  bfp_fake_quant(view(x, 1, 4), view(y, 1, 4), {4, 5, false});
  CHECK(y[0] == inf);
  CHECK(y[1] == -inf);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 1.0f);
}

TEST_CASE("bfp: whole groups of 16 blocks (the transposed reduction), blocks of every kind side by side") {
  // Rows of 17 B + 5 columns: one group of 16 whole blocks (on AVX-512 with B % 16 == 0, their maxima come
  // from one transposing reduction), then a group of one whole and one partial block. Block k of a row is
  // scaled by 2^(9k - 70) and some blocks are special, so neighbouring lanes carry unrelated exponents.
  // With and without the block near FLT_MAX: one such block makes its group round by scaling (the
  // magic-constant rounding needs the step below 2^105), otherwise groups round by the magic constants.
  // Row 0 has a denormal block and Inf beside quiet NaNs; row 1 quiet NaNs only (which rounding by the
  // magic constants passes through), row 2 signalling NaNs beside Inf. Block 13 holds a tie at m bits.
  for (const bool huge : {true, false})
  for (const index_t B : {index_t(16), index_t(48), index_t(64)})
    for (const bool truncate : {false, true})
      for (const int m : {1, 8, 15, 22, 23, 24}) {
        const index_t rows = 3, cols = 17 * B + 5;
        auto v = spread(static_cast<std::size_t>(rows * cols), 3, std::uint64_t(B + m));
        for (index_t i = 0; i < rows; ++i)
          for (index_t j = 0; j < cols; ++j) {
            float& x = v[std::size_t(i * cols + j)];
            const index_t k = j / B, r = j % B;
            x = std::ldexp(x, int(9 * k) - 70 + int(i));
            if (k == 2) x = 0.0f;                                // all zero
            if (k == 3 && i == 0) x = r % 2 ? 1e-45f : -3e-42f;   // denormal
            const float nan = i == 2 ? nan_s : r % 2 ? nan_q : qnan;
            if (k == 5 && r == 7) x = i == 1 ? nan_q : inf;         // Inf and NaN beside finite values
            if (k == 6 && r == 0) x = nan;
            if (k == 7 && huge) x = r == B - 1 ? 0x1.fffffep127f : 1.0f;  // rounds up to 2^128
            if (k == 10) x = std::ldexp(x, 60);                    // large, with a step below 2^105
            if (k == 11 && r % 4 == 1) x = -x;                     // ties and signs: +-0.5, +-1.5 steps
            if (k == 12) x = float(int(r) - int(B / 2)) * 0.5f;
            if (k == 8) x = r % 3 ? nan : i == 1 ? qnan : -inf;     // no finite value
            if (k == 13) x = r == 3 ? std::ldexp(2.0f - std::ldexp(1.0f, -m), int(i)) : 0.25f;
            if (k == 9 && r == 5) x = 0x1.ffffffp-1f * 2;         // the maximum rounds up at m bits
          }
        check_bfp(rows, cols, 1, {B, m, truncate}, v);
      }
  // bf16 in: the same as its fp32 values
  const index_t rows = 2, cols = 16 * 32;
  padded<bf16> xb(rows, cols, 0);
  xb.fill(spread(std::size_t(rows * cols), 8, 5));
  padded<float> xf(rows, cols, 0), yb(rows, cols, 0), yf(rows, cols, 0);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) xf(i, j) = to_float(xb(i, j));
  bfp_fake_quant(xb.cm(), yb.m(), {32, 6, false});
  bfp_fake_quant(xf.cm(), yf.m(), {32, 6, false});
  int bad = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) bad += !test::same_bits(yb(i, j), yf(i, j));
  CHECK(bad == 0);
}

TEST_CASE("bfp: streaming stores (outputs past tpp::stream_threshold) write what cached stores write") {
  const test::stream_threshold_guard keep;
  int bad = 0;
  for (const index_t B : {index_t(16), index_t(32), index_t(48), index_t(64)})
    for (const bool truncate : {false, true})
      for (const int m : {1, 8, 23}) {
        INFO("B ", B, " m ", m, " truncate ", truncate);
        // rows of 17 blocks and 5 columns (a partial vector at the end), ld a multiple of 16 with padding
        const index_t rows = 3, cols = 17 * B + 5, ld = (cols + 15) / 16 * 16 + 16;
        std::vector<float> xb, sb, cb, ib;
        const mat<float> x = test::aligned_view(xb, rows, cols, ld), ys = test::aligned_view(sb, rows, cols, ld),
                         yc = test::aligned_view(cb, rows, cols, ld), xy = test::aligned_view(ib, rows, cols, ld);
        const auto v = spread(std::size_t(rows * cols), 20, std::uint64_t(B * 31 + m));
        for (index_t i = 0; i < rows; ++i)
          for (index_t j = 0; j < cols; ++j) x(i, j) = xy(i, j) = v[std::size_t(i * cols + j)];
        x(0, 5) = xy(0, 5) = inf;
        x(1, 7) = xy(1, 7) = nan_s;
        x(2, cols - 2) = xy(2, cols - 2) = nan_q;
        const bfp_params p{B, m, truncate};
        tpp::stream_threshold = 0;  // every output streams where it can
        CHECK(detail::streams(ys, detail::view_bytes(ys)) == detail::streaming_available);
        bfp_fake_quant(mat<const float>(x), ys, p);
        bfp_fake_quant(mat<const float>(xy), xy, p);  // in place
        tpp::stream_threshold = SIZE_MAX;
        bfp_fake_quant(mat<const float>(x), yc, p);
        bad += test::differing(ys, yc) + test::differing(xy, yc);
      }
  CHECK(bad == 0);
}

TEST_CASE("bfp: edge shapes with bf16 in / out, in-place fake-quant") {
  for (const auto& sh : test::edge_shapes()) {
    INFO(test::describe(sh));
    const bfp_params p{5, 4, false};
    padded<bf16> x(sh.rows, sh.cols, sh.pad);
    x.fill(spread(std::size_t(sh.rows * sh.cols), 6, 77));
    padded<bf16> y(sh.rows, sh.cols, sh.pad);
    bfp_fake_quant(x.cm(), y.m(), p);
    padded<float> xf(sh.rows, sh.cols, 0), yf(sh.rows, sh.cols, 0);
    for (index_t i = 0; i < sh.rows; ++i)
      for (index_t j = 0; j < sh.cols; ++j) xf(i, j) = to_float(x(i, j));
    bfp_fake_quant(xf.cm(), yf.m(), p);
    bfp_fake_quant(xf.cm(), xf.m(), p);  // in-place
    int bad = 0;
    for (index_t i = 0; i < sh.rows; ++i)
      for (index_t j = 0; j < sh.cols; ++j) {
        bad += y(i, j) != to_bf16_rne(yf(i, j));  // 4-bit codes are bf16 values: exact
        bad += !test::same_bits(xf(i, j), yf(i, j));
      }
    CHECK(bad == 0);
    CHECK(y.padding_intact());
  }
}

TEST_CASE("bfp: bad arguments throw tpp::error naming op and argument") {
  float xb[64] = {};
  std::int8_t qb[64] = {};
  std::int16_t q16[64] = {};
  const mat<const float> x{xb, 2, 4, 4};
  const mat<std::int8_t> q{qb, 2, 4, 4};
  // bfp: block 0, mantissa bits out of range, exponent shape
  std::int16_t e[8];
  CHECK_THROWS_WITH_AS(bfp_fake_quant(x, mat<float>{xb + 16, 2, 4, 4}, {0, 8, false}),
                       "tpp::bfp_fake_quant: block (0) is not >= 1", error);
  CHECK_THROWS_WITH_AS(bfp_fake_quant(x, mat<float>{xb + 16, 2, 4, 4}, {4, 25, false}),
                       "tpp::bfp_fake_quant: mantissa_bits (25) is outside [1, 24]", error);
  CHECK_THROWS_WITH_AS(bfp_quantize(x, q, mat<std::int16_t>{e, 2, 1, 1}, {4, 8, false}),
                       "tpp::bfp_quantize: mantissa_bits (8) is outside [1, 7]", error);
  CHECK_THROWS_WITH_AS(bfp_quantize(x, q, mat<std::int16_t>{e, 2, 2, 2}, {4, 7, false}),
                       "tpp::bfp_quantize: exponent shape (2x2) differs from the blocks' (2x1)", error);
  CHECK_THROWS_AS(bfp_quantize(x, mat<std::int16_t>{q16, 2, 4, 4}, mat<std::int16_t>{e, 2, 1, 1}, {4, 0, false}), error);
  CHECK_THROWS_AS(bfp_dequantize(mat<const std::int16_t>{q16, 2, 4, 4}, mat<const std::int16_t>{e, 2, 1, 1},
                                 mat<float>{xb, 2, 4, 4}, {-3, 8, false}),
                  error);
}

}  // namespace
