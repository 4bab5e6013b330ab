// arch/scale.hpp: scalef (vscalefps on AVX-512) equals its scalar twin, the product in double rounded once,
// bit for bit at every arch this build runs: any bit pattern x (NaNs, infinities, denormals) times 2^n for
// every integer n in [-277, 277], results that overflow, underflow to denormals and round at the bottom.

#include <cstring>

#include <tpp/arch/scale.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A>
void check_scalef() {
  using F = xsimd::batch<float, A>;
  constexpr std::size_t W = F::size;
  std::vector<float> x = tpp::test::any_bits(64 * W, 3);
  const std::vector<float> sp = tpp::test::special_values();
  for (std::size_t k = 0; k < sp.size() && k < x.size(); ++k) x[3 * k % x.size()] = sp[k];
  std::size_t bad = 0;
  for (int n = -277; n <= 277; ++n)
    for (std::size_t i = 0; i + W <= x.size(); i += W) {
      alignas(64) float a[64], b[64], e[64];
      for (std::size_t k = 0; k < W; ++k) e[k] = float(n + int(k % 3) - 1 < -277 ? -277 : n + int(k % 3) - 1 > 277 ? 277 : n + int(k % 3) - 1);
      const F v = F::load_unaligned(x.data() + i), s = F::load_aligned(e);
      tpp::arch::scalef<A>(v, s).store_aligned(a);
      tpp::arch::scalef_scalar<A>(v, s).store_aligned(b);
      bad += std::memcmp(a, b, W * sizeof(float)) != 0;
    }
  CHECK(bad == 0);
  // exact where representable: 2^-149 (the smallest denormal) times 2^149 is 1, 1.5 times 2^-150 rounds to 2^-149
  alignas(64) float one[64], got[64], n149[64];
  for (std::size_t k = 0; k < W; ++k) one[k] = std::numeric_limits<float>::denorm_min(), n149[k] = 149.0f;
  tpp::arch::scalef<A>(F::load_aligned(one), F::load_aligned(n149)).store_aligned(got);
  for (std::size_t k = 0; k < W; ++k) CHECK(got[k] == 1.0f);
  for (std::size_t k = 0; k < W; ++k) one[k] = 1.5f, n149[k] = -150.0f;
  tpp::arch::scalef<A>(F::load_aligned(one), F::load_aligned(n149)).store_aligned(got);
  for (std::size_t k = 0; k < W; ++k) CHECK(got[k] == std::numeric_limits<float>::denorm_min());
}

}  // namespace

TEST_CASE("arch: scalef equals its scalar twin (double product, one rounding)") {
  tpp::test::for_each_arch([](auto arch) { check_scalef<decltype(arch)>(); });
}
