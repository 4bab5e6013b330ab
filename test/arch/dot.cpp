// arch/dot.hpp: each instruction wrapper equals its scalar twin (the instruction's definition) lane for
// lane, bit for bit, on random words: bf16 pairs with normal, zero and denormal halves and random
// accumulators; uint8 x int8 quads over the whole byte range, with accumulators near the int32 limits.

#include <random>

#include <tpp/arch/dot.hpp>

#include "support.hpp"

TEST_CASE("arch: dot_bf16_pair (vdpbf16ps) and dot_u8s8_quad (vpdpbusd) scalar twins") {
  // A hand-checked case each: acc 1 + 2*3 + 4*5 = 27; acc -7 + 255*(-128) + 1*127 + 2*(-1) + 0*5.
  const auto pair = [](float lo, float hi) {
    return std::uint32_t(tpp::to_bf16_rne(lo).bits) | std::uint32_t(tpp::to_bf16_rne(hi).bits) << 16;
  };
  CHECK(tpp::arch::dot_bf16_pair(1.0f, pair(2, 4), pair(3, 5)) == 27.0f);
  const std::uint32_t a = 255u | 1u << 8 | 2u << 16 | 0u << 24;
  const std::uint32_t b = std::uint32_t(std::uint8_t(-128)) | 127u << 8 | std::uint32_t(std::uint8_t(-1)) << 16 | 5u << 24;
  CHECK(tpp::arch::dot_u8s8_quad(-7, a, b) == -7 - 255 * 128 + 127 - 2);
  // The round after each add is visible: 1 + 2^-24 * 1 (lost) + 2^-24 (lost) stays 1.
  CHECK(tpp::arch::dot_bf16_pair(1.0f, pair(0x1p-12f, 0x1p-12f), pair(0x1p-12f, 0x1p-12f)) == 1.0f);
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
TEST_CASE("arch: vdpbf16ps and vpdpbusd equal their scalar twins lane for lane") {
  using A = xsimd::avx512bw;
  std::mt19937 rng(17);
  auto bf16_bits = [&]() -> std::uint32_t {
    const std::uint32_t r = rng();
    switch (r % 8) {
      case 0: return 0;                                   // zero
      case 1: return (r >> 8) & 0x807f;                   // denormal (flushed)
      default: return (r >> 8 & 0x8000) | ((100 + (r >> 3) % 56) << 7) | (r >> 16 & 0x7f);  // normal, 2^-27..2^28
    }
  };
  std::size_t bad_bf16 = 0, bad_int8 = 0;
  for (int rep = 0; rep < 20000; ++rep) {
    alignas(64) std::uint32_t wa[16], wb[16];
    alignas(64) float acc[16], got[16];
    alignas(64) std::int32_t iacc[16], igot[16];
    for (int l = 0; l < 16; ++l) {
      wa[l] = bf16_bits() | bf16_bits() << 16;
      wb[l] = bf16_bits() | bf16_bits() << 16;
      acc[l] = std::bit_cast<float>(std::uint32_t(bf16_bits() << 16 | (rng() & 0xffff)));
      iacc[l] = std::int32_t(rng()) >> (rng() % 32);
    }
    const auto fa = xsimd::batch<float, A>::load_aligned(reinterpret_cast<const float*>(wa));
    const auto fb = xsimd::batch<float, A>::load_aligned(reinterpret_cast<const float*>(wb));
    tpp::arch::dot_bf16_pairs(xsimd::batch<float, A>::load_aligned(acc), fa, fb).store_aligned(got);
    const auto ia = xsimd::batch<std::int32_t, A>::load_aligned(reinterpret_cast<const std::int32_t*>(wa));
    const auto ib = xsimd::batch<std::int32_t, A>::load_aligned(reinterpret_cast<const std::int32_t*>(wb));
    tpp::arch::dot_u8s8_quads(xsimd::batch<std::int32_t, A>::load_aligned(iacc), ia, ib).store_aligned(igot);
    for (int l = 0; l < 16; ++l) {
      const float want = tpp::arch::dot_bf16_pair(acc[l], wa[l], wb[l]);
      if (tpp::test::bits(want) != tpp::test::bits(got[l]) && bad_bf16++ < 3)
        MESSAGE("vdpbf16ps: acc ", tpp::test::hex(acc[l]), " a ", wa[l], " b ", wb[l], " got ",
                tpp::test::hex(got[l]), " twin ", tpp::test::hex(want));
      if (tpp::arch::dot_u8s8_quad(iacc[l], wa[l], wb[l]) != igot[l]) ++bad_int8;
    }
  }
  CHECK(bad_bf16 == 0);
  CHECK(bad_int8 == 0);
}
#endif
