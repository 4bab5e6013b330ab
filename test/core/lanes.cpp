// core/lanes.hpp: every helper's batch form equals its float form lane by lane, bit for bit, at every arch
// this build runs (the float form is the definition the scalar build uses): loads and stores of fp32,
// bf16 and integers, full and first-n (nothing past n touched), masks, the NaN rules of max / min, the
// horizontal reductions on NaN-free lanes, select on integer lanes, and the arithmetic helpers.

#include <algorithm>
#include <cstring>

#include <tpp/core/lanes.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

namespace lanes = tpp::lanes;
using tpp::test::bits;

template <class A>
void check_lanes() {
  using V = xsimd::batch<float, A>;
  constexpr tpp::index_t W = lanes::width<V>;
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<float> x = tpp::test::any_bits(W, 7 * rep), y = tpp::test::any_bits(W, 7 * rep + 1);
    const std::vector<float> sp = tpp::test::special_values();
    for (tpp::index_t k = 0; k < W; k += 3) x[k] = sp[(k + rep) % sp.size()];
    if (rep % 4 == 0) y = x;  // equal operands, +0 / -0 pairs
    const V vx = lanes::load<V>(x.data()), vy = lanes::load<V>(y.data());
    alignas(64) float got[64];
    const auto lanewise = [&](V v, auto f) {
      v.store_aligned(got);
      for (tpp::index_t k = 0; k < W; ++k) {
        const float want = f(x[k], y[k]);
        CHECK(bits(got[k]) == bits(want));
      }
    };
    lanewise(lanes::max_propagating_nan(vx, vy), [](float a, float b) { return lanes::max_propagating_nan(a, b); });
    lanewise(lanes::min_propagating_nan(vx, vy), [](float a, float b) { return lanes::min_propagating_nan(a, b); });
    lanewise(lanes::max_second_on_nan(vx, vy), [](float a, float b) { return lanes::max_second_on_nan(a, b); });
    lanewise(lanes::min_second_on_nan(vx, vy), [](float a, float b) { return lanes::min_second_on_nan(a, b); });
    lanewise(lanes::neg(vx), [](float a, float) { return lanes::neg(a); });
    lanewise(lanes::select(lanes::is_nan(vx), vx, vy), [](float a, float b) { return std::isnan(a) ? a : b; });
    lanewise(lanes::as_f32(lanes::select(vx > vy, lanes::as_i32(vx), lanes::as_i32(vy))),
             [](float a, float b) { return a > b ? a : b; });
    lanewise(lanes::as_f32(lanes::as_u32(vx) & lanes::u32_of<V>(0x7fffffffu)), [](float a, float) { return std::fabs(a); });

    // The first n, for every n: lanes past n are +0 and memory past n is untouched.
    for (tpp::index_t n = 0; n <= W; ++n) {
      CAPTURE(n);
      std::vector<tpp::bf16> h(W + 1);
      for (tpp::index_t k = 0; k < W; ++k) h[k] = tpp::to_bf16_rne(x[k]);
      lanes::load<V>(x.data(), n).store_aligned(got);
      for (tpp::index_t k = 0; k < W; ++k) CHECK(bits(got[k]) == (k < n ? bits(x[k]) : 0u));
      lanes::load<V>(h.data(), n).store_aligned(got);
      for (tpp::index_t k = 0; k < W; ++k) CHECK(bits(got[k]) == (k < n ? bits(tpp::to_float(h[k])) : 0u));
      std::vector<tpp::bf16> out(W + 1, tpp::bf16::from_bits(0x1234));
      lanes::store(out.data(), vx, n);
      for (tpp::index_t k = 0; k <= W; ++k)
        CHECK(out[k].bits == (k < n ? tpp::to_bf16_rne(x[k]).bits : std::uint16_t(0x1234)));
      std::vector<float> fo(W + 1, -5.0f);
      lanes::store(fo.data(), vx, n);
      for (tpp::index_t k = 0; k <= W; ++k) CHECK(bits(fo[k]) == (k < n ? bits(x[k]) : bits(-5.0f)));
      std::vector<std::int8_t> i8(W);
      for (tpp::index_t k = 0; k < W; ++k) i8[k] = std::int8_t(rep * 31 + k * 17);
      lanes::load<V>(i8.data(), n).store_aligned(got);
      for (tpp::index_t k = 0; k < W; ++k) CHECK(got[k] == (k < n ? float(i8[k]) : 0.0f));
      const std::uint64_t b = lanes::bits(lanes::first_n<V>(n));
      CHECK(b == (n == 64 ? ~std::uint64_t(0) : (std::uint64_t(1) << n) - 1));
      std::vector<std::uint8_t> m(W + 1, 9);
      lanes::store_mask(m.data(), vx > V(0.0f), n);
      for (tpp::index_t k = 0; k <= W; ++k) CHECK(m[k] == (k < n ? (x[k] > 0.0f ? 1 : 0) : 9));
      const std::uint64_t back = lanes::bits(lanes::load_mask<V>(m.data(), n));
      for (tpp::index_t k = 0; k < W; ++k) CHECK(((back >> k) & 1u) == (k < n && x[k] > 0.0f ? 1u : 0u));
    }

    // Horizontal reductions of NaN-free lanes.
    const std::vector<float> u = tpp::test::uniform(W, -3.0f, 3.0f, rep);
    const V vu = lanes::load<V>(u.data());
    CHECK(lanes::hmax(vu) == *std::max_element(u.begin(), u.end()));
    CHECK(lanes::hmin(vu) == *std::min_element(u.begin(), u.end()));
    double s = 0;
    for (float f : u) s += f;
    CHECK(std::fabs(lanes::hsum(vu) - s) <= 1e-5 * W);
    const auto ge = lanes::greater_equal(lanes::as_u32(vx), 0x80000000u);
    const std::uint64_t gb = lanes::bits(ge);
    for (tpp::index_t k = 0; k < W; ++k) CHECK(((gb >> k) & 1u) == (bits(x[k]) >= 0x80000000u ? 1u : 0u));
  }
}

}  // namespace

TEST_CASE("lanes: the batch forms equal the float forms lane by lane") {
  tpp::test::for_each_arch([](auto arch) { check_lanes<decltype(arch)>(); });
}

TEST_CASE("lanes: bf16 stores and loads equal the scalar conversions at every arch, on any bit pattern") {
  auto values = tpp::test::any_bits(1u << 16, 9);
  for (float f : tpp::test::special_values()) values.push_back(f);
  while (values.size() % 16) values.push_back(0.5f);
  tpp::test::for_each_arch([&](auto arch) {
    using V = xsimd::batch<float, decltype(arch)>;
    constexpr std::size_t W = V::size;
    std::vector<tpp::bf16> h(values.size());
    std::vector<float> back(values.size());
    for (std::size_t i = 0; i < values.size(); i += W) {
      lanes::store(&h[i], lanes::load<V>(&values[i]));
      lanes::store(&back[i], lanes::load<V>(&h[i]));
    }
    std::size_t bad = 0;
    for (std::size_t i = 0; i < values.size(); ++i)
      bad += h[i].bits != tpp::to_bf16_rne(values[i]).bits || bits(back[i]) != bits(tpp::to_float(h[i]));
    INFO(std::string(decltype(arch)::name()));
    CHECK(bad == 0);
  });
}
