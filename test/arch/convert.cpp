// arch/convert.hpp: the bf16 widening load and the high-half narrowing store equal their scalar twins bit
// for bit at every arch this build runs, on every 16-bit pattern (NaNs, infinities, denormals included),
// and touch exactly W elements.

#include <cstring>

#include <tpp/arch/convert.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A>
void check_convert() {
  using F = xsimd::batch<float, A>;
  using U = xsimd::batch<std::uint32_t, A>;
  constexpr std::size_t W = F::size;
  std::vector<std::uint16_t> all(65536 + W);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = std::uint16_t(i);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 65536; i += W) {
    alignas(64) float a[64], b[64];
    tpp::arch::widen_bf16<A>(all.data() + i).store_aligned(a);
    tpp::arch::widen_bf16_scalar<A>(all.data() + i).store_aligned(b);
    bad += std::memcmp(a, b, W * sizeof(float)) != 0;
    for (std::size_t k = 0; k < W; ++k) bad += tpp::test::bits(a[k]) != std::uint32_t(all[i + k]) << 16;
  }
  const std::vector<float> src = tpp::test::any_bits(4096, 11);
  for (std::size_t i = 0; i + W <= src.size(); i += W) {
    const U u = xsimd::bitwise_cast<U>(F::load_unaligned(src.data() + i));
    std::vector<std::uint16_t> x(W + 2, 0x5a5a), y(W + 2, 0x5a5a);
    tpp::arch::store_high_halves<A>(x.data() + 1, u);
    tpp::arch::store_high_halves_scalar<A>(y.data() + 1, u);
    bad += x != y;
    bad += x[0] != 0x5a5a || x[W + 1] != 0x5a5a;
    for (std::size_t k = 0; k < W; ++k) bad += x[k + 1] != std::uint16_t(tpp::test::bits(src[i + k]) >> 16);
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("arch: widen_bf16 and store_high_halves equal their scalar twins") {
  tpp::test::for_each_arch([](auto arch) { check_convert<decltype(arch)>(); });
}
