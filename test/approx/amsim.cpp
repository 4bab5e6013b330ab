// approx/amsim.hpp: ApproxTrain AMSim tables read at run time and the amsim policy over the installed one.
// The file format round trip; from_policy against entries computed independently; amsim against mitchell<7>
// and lut<mitchell_model, 7> (scalar, every SIMD arch, GEMM) with a mitchell<7> table installed; an
// independent scalar re-implementation of ApproxTrain's AMsimulator (written from its description) against
// amsim and the same lut machinery on other tables (m = 7 and m = 4); the documented differences from
// AMsimulator; bad files; the install rules.
//
// amsim's table is process-wide and fixed at its first use, and this file shares the tpp_tests binary:
// every test case goes through installed_table(), which checks the not-installed errors once and installs
// one table (mitchell<7> at m = 7). Other tables are checked through lut<table_model<Tag>, M>, which is
// amsim_model with a slot of its own.

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <tpp/approx/amsim.hpp>
#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

using namespace tpp;
using approx::amsim;
using approx::amsim_model;
using approx::amsim_table;
using test::bits;
using test::from_bits;

// ApproxTrain's AMsimulator (cuda/AMsimulator.inl) as its description says, with its bugs: the index is
// (Amnt >> (23 - 2m)) | (Bmnt >> (23 - m)); the result is sign + (ea + eb - 127 + carry) << 23 + mant, in
// unsigned arithmetic (an exponent above 255 carries into the sign bit); ea + eb <= 127 gives +0; its
// zero-operand tests `at & EXPONENT_MASK == 0` parse as `at & (EXPONENT_MASK == 0)`, always false, so they
// are left out.
float amsimulator(const amsim_table& t, float a, float b) {
  const std::uint32_t at = bits(a), bt = bits(b);
  const int m = t.m();
  const std::uint32_t mant_mask = ((1u << m) - 1u) << (23 - m);
  const std::uint32_t index = ((at & mant_mask) >> (23 - 2 * m)) | ((bt & mant_mask) >> (23 - m));
  const std::uint32_t entry = t.bytes().at(index);
  const std::uint32_t carry = (entry & 0x80u) >> 7;
  const std::uint32_t mant = (entry & 0x7fu) << (23 - m);
  const std::uint32_t sign = (at ^ bt) & 0x80000000u;
  std::uint32_t e = ((at & 0x7f800000u) >> 23) + ((bt & 0x7f800000u) >> 23);
  if (e <= 127) return 0.0f;
  e = e - 127 + carry;
  return from_bits(sign + (e << 23) + mant);
}

// amsim_model with a slot of its own (one Tag per table): what amsim is, for tables other than the one
// this process installs.
template <int Tag>
struct table_model {
  static inline approx::amsim_slot slot;
  static float mul(float x, float y) noexcept { return slot.product(x, y); }
  static std::string name() { return "table_model"; }
};

// x (1 + (y - 1) / 2): exact in fp32 for 8-bit significands, and not symmetric.
struct asymmetric_model {
  static float mul(float x, float y) noexcept { return x * (1.0f + (y - 1.0f) * 0.5f); }
};

// A fresh directory for this process's files, removed at exit.
struct scratch_directory {
  std::filesystem::path path;
  scratch_directory() : path(std::filesystem::temp_directory_path() / ("tpp-amsim-test-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path);
  }
  ~scratch_directory() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
const std::filesystem::path& scratch_dir() {
  static const scratch_directory dir;
  return dir.path;
}
std::string scratch_file(const std::string& name) { return (scratch_dir() / name).string(); }

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// The message of the tpp::error f() throws ("(no error)" if none).
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const tpp::error& e) {
    return e.what();
  }
  return "(no error)";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A GEMM through amsim on a small problem (throws while no table is installed).
void small_amsim_gemm() {
  std::vector<float> a(6, 1.5f), b(6, 1.25f), c(4);
  gemm<amsim>(view<const float>(a.data(), 2, 3), view<const float>(b.data(), 3, 2), view(c.data(), 2, 2));
}

// The one install of this process: a mitchell<7> table at m = 7, written to a file and read back (so amsim
// runs on a table that came through the file format). Before it, checks that every use fails clearly.
const amsim_table& installed_table() {
  static const amsim_table t = [] {
    REQUIRE_FALSE(amsim_model::installed());
    CHECK(amsim::name() == "amsim:none");
    const std::string v = error_message([] { amsim::validate(); });
    INFO(v);
    CHECK(contains(v, "tpp::amsim: table is not installed"));
    CHECK(contains(error_message(small_amsim_gemm), "is not installed"));
    CHECK(contains(error_message([] { approx::check_policy<amsim>(); }), "is not installed"));
    CHECK_FALSE(amsim_model::slot().frozen());  // the failed checks left it open

    const std::string path = scratch_file("MIT_7.bin");
    amsim_table::from_policy<approx::mitchell<7>>(7).write(path);
    amsim_table r = amsim_table::read(path);
    amsim_model::install(r);
    CHECK(amsim_model::installed());
    CHECK_FALSE(amsim_model::slot().frozen());
    amsim::validate();  // builds lut's table: freezes the slot
    CHECK(amsim_model::slot().frozen());
    return r;
  }();
  return t;
}

// Random normal operands with ea + eb in 128..380, so that AMsimulator's result exponent
// ea + eb - 127 + carry lies in 1..254; random signs and mantissas.
void normal_products(std::size_t n, std::uint64_t seed, std::vector<float>& a, std::vector<float>& b) {
  std::mt19937_64 g(seed);
  a.resize(n);
  b.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t ea = 1 + std::uint32_t(g() % 254);
    const std::uint32_t lo = ea >= 127 ? 1 : 128 - ea, hi = std::min<std::uint32_t>(254, 380 - ea);
    const std::uint32_t eb = lo + std::uint32_t(g() % (hi - lo + 1));
    a[i] = from_bits((std::uint32_t(g()) & 0x807fffffu) | ea << 23);
    b[i] = from_bits((std::uint32_t(g()) & 0x807fffffu) | eb << 23);
  }
}

// P::mul over arrays with xsimd batches of arch A (n a multiple of 16).
template <class P, class A>
std::vector<float> simd_products(const std::vector<float>& a, const std::vector<float>& b) {
  using B = xsimd::batch<float, A>;
  std::vector<float> out(a.size());
  for (std::size_t i = 0; i < a.size(); i += B::size)
    P::mul(B::load_unaligned(a.data() + i), B::load_unaligned(b.data() + i)).store_unaligned(out.data() + i);
  return out;
}

// Counts lanes where got and want differ in bits; INFO names the first.
std::size_t mismatches(const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& got,
                       const std::vector<float>& want, const char* what) {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (bits(got[i]) != bits(want[i]) && bad++ == 0) first = i;
  if (bad) {
    MESSAGE(what, ": ", bad, " mismatches; first a=", test::hex(a[first]), " b=", test::hex(b[first]),
            " got=", test::hex(got[first]), " want=", test::hex(want[first]));
  }
  return bad;
}

// Scalar, default-arch batch and every arch this build runs, all equal to want(a, b).
template <class P, class Want>
void check_products(const std::vector<float>& a, const std::vector<float>& b, Want&& want, const char* what) {
  std::vector<float> ref(a.size()), got(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ref[i] = want(a[i], b[i]);
    got[i] = P::mul(a[i], b[i]);
  }
  CHECK(mismatches(a, b, got, ref, what) == 0);
  CHECK(mismatches(a, b, simd_products<P, xsimd::default_arch>(a, b), ref, what) == 0);
  test::for_each_arch([&](auto arch) {
    INFO(std::string(decltype(arch)::name()));
    CHECK(mismatches(a, b, simd_products<P, decltype(arch)>(a, b), ref, what) == 0);
  });
}

TEST_CASE("amsim_table: write then read gives the same bytes, m and source") {
  installed_table();
  for (int m = 1; m <= 7; ++m) {
    CAPTURE(m);
    const auto t = amsim_table::from_policy<approx::exact>(m);
    CHECK(t.m() == m);
    CHECK(t.bytes().size() == std::size_t(1) << (2 * m));
    CHECK(t.source() == "exact m=" + std::to_string(m));
    const std::string path = scratch_file("exact_" + std::to_string(m) + ".bin");
    t.write(path);
    CHECK(std::filesystem::file_size(path) == t.bytes().size());
    const auto r = amsim_table::read(path);
    CHECK(r.m() == m);
    CHECK(r.bytes() == t.bytes());
    CHECK(r.source() == path);
    CHECK(r.same_entries(t));
  }
  // Every byte value is a valid m = 7 entry, and survives the trip.
  std::vector<std::uint8_t> all(1 << 14);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = std::uint8_t(i * 37 + 11);
  const std::string path = scratch_file("all_bytes.bin");
  amsim_table(all, "all").write(path);
  CHECK(amsim_table::read(path).bytes() == all);
}

TEST_CASE("amsim_table: from_policy entries and significand() against independent arithmetic") {
  installed_table();
  // exact: (1 + i 2^-m)(1 + j 2^-m) in double, truncated to m bits after the carry's halving.
  for (int m = 1; m <= 7; ++m) {
    CAPTURE(m);
    const auto t = amsim_table::from_policy<approx::exact>(m);
    const int side = 1 << m;
    int bad = 0;
    for (int i = 0; i < side; ++i)
      for (int j = 0; j < side; ++j) {
        const double p = (1.0 + i / double(side)) * (1.0 + j / double(side));
        const int carry = p >= 2.0 ? 1 : 0;
        const int mant = int(std::floor((p / (1 + carry) - 1.0) * side));
        const std::uint8_t want = std::uint8_t(carry << 7 | mant);
        const double value = (1.0 + mant / double(side)) * (1 + carry);
        if (t.bytes()[std::size_t(i * side + j)] != want || double(t.significand(i, j)) != value) ++bad;
      }
    CHECK(bad == 0);
  }
  // mitchell<7>: 1 + fa + fb without a carry, 2 (fa + fb) with one: the mantissa is i + j (mod 128).
  const auto mit = amsim_table::from_policy<approx::mitchell<7>>(7);
  int bad = 0;
  for (int i = 0; i < 128; ++i)
    for (int j = 0; j < 128; ++j) {
      const int s = i + j, carry = s >= 128 ? 1 : 0;
      if (mit.bytes()[std::size_t(i * 128 + j)] != std::uint8_t(carry << 7 | (s - 128 * carry))) ++bad;
    }
  CHECK(bad == 0);
  CHECK(mit.bytes() == installed_table().bytes());
  // A policy that is not symmetric, (1 + i/128)(1 + j/256): entry (i, j) is row i, column j.
  const auto asym = amsim_table::from_policy<approx::lut<asymmetric_model, 7>>(7);
  bad = 0;
  for (int i = 0; i < 128; ++i)
    for (int j = 0; j < 128; ++j) {
      const double p = (1.0 + i / 128.0) * (1.0 + j / 256.0);
      const int carry = p >= 2.0 ? 1 : 0;
      const int mant = int(std::floor((p / (1 + carry) - 1.0) * 128));
      if (asym.bytes()[std::size_t(i * 128 + j)] != std::uint8_t(carry << 7 | mant)) ++bad;
    }
  CHECK(bad == 0);
  // Tables of every catalogue policy that fits the format build at m = 7; mbm's correction takes its top
  // corner to 4.05, outside the format's [1, 4).
  CHECK_NOTHROW(amsim_table::from_policy<approx::bf16_rz>(7));
  CHECK_NOTHROW(amsim_table::from_policy<approx::drum<6>>(7));
  CHECK_NOTHROW(amsim_table::from_policy<approx::lut<approx::exact_model, 4>>(5));
  const std::string e = error_message([] { amsim_table::from_policy<approx::mbm<7>>(7); });
  INFO(e);
  CHECK(contains(e, "tpp::amsim_table: mbm<7> gives 4 for (1.96875, 1.9921875)"));  // 124 + 127 = 251: 3.92 + c
  CHECK(contains(e, "[1, 4)"));
  CHECK(test::error_argument([] { amsim_table::from_policy<approx::exact>(0); }) == "m");
  CHECK(test::error_argument([] { amsim_table::from_policy<approx::exact>(8); }) == "m");
}

TEST_CASE("amsim with a mitchell<7> table equals lut<mitchell_model, 7> and mitchell<7> bit for bit") {
  installed_table();
  std::vector<float> a, b;
  normal_products(1 << 16, 1, a, b);
  const auto any_a = test::any_bits(1 << 16, 2), any_b = test::any_bits(1 << 16, 3);
  a.insert(a.end(), any_a.begin(), any_a.end());
  b.insert(b.end(), any_b.begin(), any_b.end());
  for (float x : test::special_values())
    for (float y : test::special_values()) {
      a.push_back(x);
      b.push_back(y);
    }
  while (a.size() % 16) {
    a.push_back(1.0f);
    b.push_back(1.0f);
  }
  using lut7 = approx::lut<approx::mitchell_model, 7>;
  check_products<amsim>(a, b, [](float x, float y) { return lut7::mul(x, y); }, "amsim vs lut<mitchell_model, 7>");
  check_products<amsim>(a, b, [](float x, float y) { return approx::mitchell<7>::mul(x, y); }, "amsim vs mitchell<7>");
  CHECK(amsim::name() == "amsim:MIT_7.bin");
  CHECK(approx::gemm_traits<amsim>::path == approx::gemm_path::table);
  CHECK(approx::gemm_traits<amsim>::bounded());
  static_assert(approx::multiplier<amsim>);
}

TEST_CASE("amsim: a GEMM equals the one through lut<mitchell_model, 7>") {
  installed_table();
  using lut7 = approx::lut<approx::mitchell_model, 7>;
  const index_t m = 67, n = 45, k = 83;
  const auto a = test::uniform(std::size_t(m * k), -2.0f, 2.0f, 5), b = test::uniform(std::size_t(k * n), -2.0f, 2.0f, 6);
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      const gemm_params p{1.0f, 0.0f, ta, tb};
      const auto av = ta ? view<const float>(a.data(), k, m) : view<const float>(a.data(), m, k);
      const auto bv = tb ? view<const float>(b.data(), n, k) : view<const float>(b.data(), k, n);
      std::vector<float> c_amsim(std::size_t(m * n)), c_lut(c_amsim.size()), c_exact(c_amsim.size());
      gemm<amsim>(av, bv, view(c_amsim.data(), m, n), p);
      gemm<lut7>(av, bv, view(c_lut.data(), m, n), p);
      gemm<approx::exact>(av, bv, view(c_exact.data(), m, n), p);
      std::size_t bad = 0, differ_from_exact = 0;
      for (std::size_t i = 0; i < c_amsim.size(); ++i) {
        bad += bits(c_amsim[i]) != bits(c_lut[i]);
        differ_from_exact += c_amsim[i] != c_exact[i];
      }
      CHECK(bad == 0);
      CHECK(differ_from_exact > c_amsim.size() / 2);  // the products really are Mitchell's
      // one element against a plain sum of amsim::mul (fp32 sums in another order: a loose bound)
      double ref = 0.0, mag = 0.0;
      for (index_t q = 0; q < k; ++q) {
        const float x = ta ? a[std::size_t(q * m)] : a[std::size_t(q)];
        const float y = tb ? b[std::size_t(q)] : b[std::size_t(q * n)];
        ref += amsim::mul(x, y);
        mag += std::fabs(amsim::mul(x, y));
      }
      CHECK(std::fabs(double(c_amsim[0]) - ref) <= 2.0 * double(k) * test::u_fp32 * mag);
    }
}

// AMsimulator equals the lut machinery on table t (m bits) wherever products are normal.
template <int Tag, int M>
void check_against_amsimulator(const amsim_table& t, std::uint64_t seed) {
  table_model<Tag>::slot.install(t);
  using P = approx::lut<table_model<Tag>, M>;
  P::validate();
  std::vector<float> a, b;
  normal_products(1 << 16, seed, a, b);
  check_products<P>(a, b, [&](float x, float y) { return amsimulator(t, x, y); }, "lut<table_model> vs AMsimulator");
}

TEST_CASE("amsim equals ApproxTrain's AMsimulator on normal products (m = 7 and m = 4)") {
  const amsim_table& installed = installed_table();
  std::vector<float> a, b;
  normal_products(1 << 17, 9, a, b);
  check_products<amsim>(a, b, [&](float x, float y) { return amsimulator(installed, x, y); }, "amsim vs AMsimulator");

  // Other tables, through files: exact products (carries at every mantissa) and random entries (not
  // symmetric: a swapped index shows) at m = 7, and the same at m = 4, both expanded to 7 index bits (as
  // amsim does for m < 7) and at its own 4.
  const std::string p7 = scratch_file("ACC_7.bin"), p4 = scratch_file("EXACT_4.bin");
  amsim_table::from_policy<approx::exact>(7).write(p7);
  amsim_table::from_policy<approx::exact>(4).write(p4);
  const amsim_table t7 = amsim_table::read(p7), t4 = amsim_table::read(p4);
  REQUIRE(t4.m() == 4);
  std::mt19937 g(13);
  std::vector<std::uint8_t> r7(1 << 14), r4(1 << 8);
  for (auto& x : r7) x = std::uint8_t(g());
  for (auto& x : r4) x = std::uint8_t(g() & 0x8fu);  // m = 4: the carry and bits 3..0
  const amsim_table random7(r7, "random7"), random4(r4, "random4");
  check_against_amsimulator<7, 7>(t7, 10);
  check_against_amsimulator<4, 7>(t4, 11);
  check_against_amsimulator<40, 4>(t4, 12);
  check_against_amsimulator<70, 7>(random7, 14);
  check_against_amsimulator<41, 7>(random4, 15);
  check_against_amsimulator<42, 4>(random4, 16);
  // amsim_table::product on m = 4 uses the top 4 mantissa bits only.
  CHECK(t4.product(1.5f, 1.5f) == 2.25f);
  CHECK(t4.product(from_bits(0x3fc7ffffu), from_bits(0x3fc7ffffu)) == 2.25f);  // 1.5624999 truncates to 1.5
  CHECK(t4.product(1.5625f, 1.5f) == 2.25f);  // 2.34375 = 2 (1 + 2.75/16) truncates to 2 (1 + 2/16)
}

TEST_CASE("amsim vs AMsimulator: the documented differences") {
  const amsim_table& t = installed_table();  // mitchell<7>: entry (0, 0) is 1.0, no carry
  const float inf = std::numeric_limits<float>::infinity();
  // 0 * 2^10: AMsimulator's zero test never fires: 2^(0 + 137 - 127 - 127) = 2^-117; ours +-0.
  CHECK(amsimulator(t, 0.0f, 0x1p10f) == 0x1p-117f);
  CHECK(bits(amsim::mul(0.0f, 0x1p10f)) == bits(0.0f));
  CHECK(bits(amsim::mul(-0.0f, 0x1p10f)) == bits(-0.0f));
  // a denormal: read as exponent 0 with an implicit 1; ours flushes it.
  CHECK(amsimulator(t, 0x1p-140f, 0x1p100f) == 0x1p-27f);
  CHECK(bits(amsim::mul(0x1p-140f, 0x1p100f)) == bits(0.0f));
  // overflow: 2^100 * 2^100 gives exponent 327, whose bit 8 lands in the sign: -2^(71 - 127); ours +Inf.
  CHECK(amsimulator(t, 0x1p100f, 0x1p100f) == -0x1p-56f);
  CHECK(amsim::mul(0x1p100f, 0x1p100f) == inf);
  CHECK(amsim::mul(-0x1p100f, 0x1p100f) == -inf);
  // Inf * 2: a number with exponent 255 to AMsimulator (exponent 256 is the sign bit: -0); ours Inf.
  CHECK(bits(amsimulator(t, inf, 2.0f)) == bits(-0.0f));
  CHECK(amsim::mul(inf, 2.0f) == inf);
  // ea + eb = 127 with a carry (1.5 * 1.5 -> 2.0): AMsimulator returns 0, the product 2^-126 is normal.
  CHECK(bits(amsimulator(t, 0x1.8p-63f, -0x1.8p-64f)) == bits(0.0f));
  CHECK(amsim::mul(0x1.8p-63f, -0x1.8p-64f) == -std::numeric_limits<float>::min());
  // below the normal range: AMsimulator +0 whatever the signs, ours the XOR of the signs.
  CHECK(bits(amsimulator(t, -0x1p-70f, 0x1p-70f)) == bits(0.0f));
  CHECK(bits(amsim::mul(-0x1p-70f, 0x1p-70f)) == bits(-0.0f));
}

TEST_CASE("amsim_table: bad files throw tpp::error naming the file") {
  installed_table();
  auto check_bad = [](const std::string& path, const std::string& what) {
    try {
      amsim_table::read(path);
      FAIL("no error for ", path);
    } catch (const tpp::error& e) {
      INFO(e.what());
      CHECK(e.op() == "amsim_table");
      CHECK(e.argument() == path);
      CHECK(contains(e.what(), "tpp::amsim_table: " + path + " "));
      CHECK(contains(e.what(), what));
    }
  };
  check_bad(scratch_file("missing.bin"), "cannot be opened for reading");
  check_bad(scratch_dir().string(), "could not be read");  // a directory
  const std::string p0 = scratch_file("empty.bin"), p100 = scratch_file("size100.bin"), p48 = scratch_file("size4_8.bin"),
                    p5 = scratch_file("size5.bin"), pe = scratch_file("bad_entry.bin");
  write_bytes(p0, {});
  write_bytes(p100, std::vector<std::uint8_t>(100));
  write_bytes(p48, std::vector<std::uint8_t>(1 << 16));
  write_bytes(p5, std::vector<std::uint8_t>(5));
  check_bad(p0, "has 0 bytes: an AMSim table has 4^m bytes for 1 <= m <= 7");
  check_bad(p100, "has 100 bytes: an AMSim table has 4^m bytes for 1 <= m <= 7");
  check_bad(p48, "has 65536 bytes");
  check_bad(p5, "has 5 bytes");
  // m = 3: only bit 7 and bits 2..0 may be set; entry 13 (ma 1, mb 5) has bit 4.
  std::vector<std::uint8_t> e(64, 0x83);
  e[13] = 0x10;
  write_bytes(pe, e);
  check_bad(pe, "entry 13 (ma 1, mb 5) is 0x10: for m = 3 only the carry (bit 7) and bits 2..0 may be set");
  e[13] = 0x87;  // the largest valid entry
  write_bytes(pe, e);
  CHECK(amsim_table::read(pe).significand(1, 5) == 3.75f);
  // writing where no file can be
  const std::string nowhere = scratch_file("no_such_dir/x.bin");
  CHECK(contains(error_message([&] { amsim_table::from_policy<approx::exact>(2).write(nowhere); }),
                 "tpp::amsim_table: " + nowhere + " cannot be opened for writing"));
}

TEST_CASE("amsim: install rules (the process table, and fresh slots)") {
  const amsim_table& t = installed_table();
  // The process table is frozen: the same entries again is fine, a different table throws.
  CHECK_NOTHROW(amsim_model::install(amsim_table::from_policy<approx::mitchell<7>>(7)));
  const std::string e = error_message([] { amsim_model::install(amsim_table::from_policy<approx::exact>(7)); });
  INFO(e);
  CHECK(contains(e, "tpp::amsim: install(exact m=7) after amsim:" + t.source() + " was used"));
  CHECK(amsim::name() == "amsim:MIT_7.bin");
  CHECK(amsim_model::mul(1.5f, 1.5f) == 2.0f);  // still mitchell's table

  // A fresh slot: replaced freely before its first use, fixed after.
  approx::amsim_slot s;
  CHECK(s.name() == "amsim:none");
  s.install(amsim_table::from_policy<approx::exact>(3));
  s.install(amsim_table::read(scratch_file("MIT_7.bin")));
  CHECK(s.name() == "amsim:MIT_7.bin");
  const amsim_table* f = s.freeze();
  REQUIRE(f != nullptr);
  CHECK(f->m() == 7);
  CHECK(f->same_entries(t));
  CHECK(s.freeze() == f);
  CHECK_THROWS_AS(s.install(amsim_table::from_policy<approx::exact>(3)), tpp::error);
  CHECK_NOTHROW(s.install(amsim_table::from_policy<approx::mitchell<7>>(7)));
  CHECK(s.freeze() == f);

  // A slot used before any install: the product was NaN, and no install can follow.
  approx::amsim_slot early;
  CHECK(early.freeze() == nullptr);
  const std::string e2 = error_message([&] { early.install(amsim_table::from_policy<approx::exact>(3)); });
  INFO(e2);
  CHECK(contains(e2, "tpp::amsim: install(exact m=3) after a product was computed with no table installed"));
  CHECK_FALSE(early.installed());
}

}  // namespace
