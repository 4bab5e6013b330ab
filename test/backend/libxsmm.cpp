// backend/libxsmm: LIBXSMM 1.17 batch-reduce GEMM, fp32 and bf16, every batch kind against a double
// reference (beta 0 over a NaN-filled C, beta 1, padded lds with NaN in the padding and between batch
// entries, batches longer than one offset or packing chunk), the kinds bit for bit against each other;
// bad arguments and kind mismatches.
//
// Tolerance. Every product of two fp32 (or bf16) inputs is exact in double, so the reference is the exact
// sum up to a relative 2^-53 per term. LIBXSMM accumulates each C element in an fp32 register: it starts
// at 0 (beta 0) or the old C (beta 1), then takes the K = k * count products one fused multiply-add at a
// time (fp32), or, for bf16, a product exact in fp32 and one rounded add each (vdpbf16ps). That is a sum of
// at most K + 1 terms with one rounding (u = 2^-24) per add, in some order, so
//   |got - ref| <= gamma_{K+1} (sum |a||b| + |beta c0|),   gamma_N = N u / (1 - N u),
// which also covers a kernel that rounds each product before adding it ((1 + u)(1 + gamma_K) <=
// 1 + gamma_{K+1}). bf16 kernels flush denormals; the data here is uniform in [-1, 1), far from them.
//
// Under LIBXSMM_TARGET=generic (the ctest backend/libxsmm_generic) 1.17 returns no kernel at all: every
// check then accepts valid() == false (and that calls throw) or right results, and says which it saw. On
// any other target fp32 kernels must be valid, and bf16 ones from an AVX-512 target up.

#if defined(TPP_WITH_LIBXSMM)

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include <tpp/backend/libxsmm.hpp>
#include <tpp/ops/gemm.hpp>

#include "support.hpp"

namespace {

using namespace tpp;
namespace lx = tpp::backend::libxsmm;

template <class T>
T from(float f) {
  return from_float<T>(f);
}

template <class T>
std::vector<T> make(std::size_t n, std::uint64_t seed) {
  const auto f = test::uniform(n, -1.0f, 1.0f, seed);
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = from<T>(f[i]);
  return v;
}

// Whether this LIBXSMM target must produce T kernels (false: it may or may not, e.g. under generic).
template <class T>
bool must_be_valid() {
  const int arch = libxsmm_get_target_archid();
  if (arch <= LIBXSMM_X86_GENERIC) return false;
  return std::is_same_v<T, float> || arch >= LIBXSMM_X86_AVX512_CORE;
}

// How many kernels were invalid and how many were checked, reported once per test case.
struct tally {
  int invalid = 0, checked = 0;
  void report(const char* what) const {
    const std::string text = std::string("LIBXSMM target '") + libxsmm_get_target_arch() + "', " + what + ": " +
                             std::to_string(checked) + " kernels valid and checked, " + std::to_string(invalid) +
                             " with valid() == false (calls throw)";
    MESSAGE(text);
  }
};

// Skips an invalid kernel (after checking that it is allowed to be invalid and that calling it throws).
template <class T, class Call>
bool usable(const lx::brgemm<T>& k, Call call, tally& t) {
  if (k.valid()) {
    ++t.checked;
    return true;
  }
  ++t.invalid;
  CHECK_FALSE(must_be_valid<T>());
  CHECK_THROWS_WITH_AS(call(), doctest::Contains("tpp::libxsmm_brgemm: kernel is not valid"), error);
  return false;
}

struct problem {
  index_t m, n, k, count;
};

// count (A_i, B_i) pairs stored stride apart in one buffer each, lds padded by pad; padding and gaps NaN,
// so reading them would show.
template <class T>
struct batch {
  index_t lda, ldb, stride_a, stride_b;
  std::vector<T> a, b;
  std::vector<index_t> order;  // entry i of address and offset batches is stored at slot order[i]

  batch(problem p, index_t pad, std::uint64_t seed)
      : lda(p.k + pad), ldb(p.n + 2 * pad), stride_a(p.m * lda + 3), stride_b(p.k * ldb + 5),
        a(std::size_t(stride_a * p.count), from<T>(std::numeric_limits<float>::quiet_NaN())),
        b(std::size_t(stride_b * p.count), from<T>(std::numeric_limits<float>::quiet_NaN())),
        order(std::size_t(p.count)) {
    const auto va = make<T>(a.size(), seed), vb = make<T>(b.size(), seed + 1);
    for (index_t s = 0; s < p.count; ++s) {
      for (index_t i = 0; i < p.m; ++i)
        for (index_t q = 0; q < p.k; ++q) {
          const std::size_t at = std::size_t(s * stride_a + i * lda + q);
          a[at] = va[at];
        }
      for (index_t q = 0; q < p.k; ++q)
        for (index_t j = 0; j < p.n; ++j) {
          const std::size_t at = std::size_t(s * stride_b + q * ldb + j);
          b[at] = vb[at];
        }
    }
    std::iota(order.begin(), order.end(), index_t(0));
    std::reverse(order.begin(), order.end());  // not in memory order
    for (std::size_t i = 1; i < order.size(); i += 2) std::swap(order[i - 1], order[i]);
  }
  const T* a_at(index_t slot) const { return a.data() + slot * stride_a; }
  const T* b_at(index_t slot) const { return b.data() + slot * stride_b; }
};

// Elements of c (m, n), ld ldc, that miss the reference over the given slots, plus padding changed from c0.
template <class T>
int mismatches(problem p, const batch<T>& x, const std::vector<index_t>& slots, float beta,
               const std::vector<float>& c0, const std::vector<float>& c, index_t ldc) {
  const double u = test::u_fp32, big_k = double(p.k * p.count + 1), gamma = big_k * u / (1 - big_k * u);
  int bad = 0;
  for (index_t i = 0; i < p.m; ++i) {
    for (index_t j = 0; j < p.n; ++j) {
      const std::size_t at = std::size_t(i * ldc + j);
      double ref = beta != 0 ? double(c0[at]) : 0.0, abs_sum = std::abs(ref);
      for (const index_t s : slots) {
        const T* a = x.a_at(s) + i * x.lda;
        const T* b = x.b_at(s) + j;
        for (index_t q = 0; q < p.k; ++q) {
          const double prod = double(to_float(a[q])) * double(to_float(b[q * x.ldb]));
          ref += prod;
          abs_sum += std::abs(prod);
        }
      }
      const double tol = gamma * abs_sum;
      if (!(std::abs(double(c[at]) - ref) <= tol) && bad++ < 3)
        MESSAGE("m=", p.m, " n=", p.n, " k=", p.k, " count=", p.count, " (", i, ",", j, ") got ", c[at], " ref ", ref,
                " tol ", tol);
    }
    for (index_t j = p.n; j < ldc; ++j)
      if (test::bits(c[std::size_t(i * ldc + j)]) != test::bits(c0[std::size_t(i * ldc + j)])) ++bad;
  }
  return bad;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return std::equal(x.begin(), x.end(), y.begin(), y.end(),
                    [](float u, float v) { return test::bits(u) == test::bits(v); });
}

// The three kinds on one problem, each against the reference; the kinds against each other bit for bit
// (the same products summed in the same order: address and offset over the same slot order).
template <class T>
void check_kinds(problem p, index_t pad, float beta, std::uint64_t seed, tally& t) {
  CAPTURE(p.m);
  CAPTURE(p.n);
  CAPTURE(p.k);
  CAPTURE(p.count);
  CAPTURE(pad);
  CAPTURE(beta);
  const batch<T> x(p, pad, seed);
  const index_t ldc = p.n + pad;
  std::vector<float> c0 = test::uniform(std::size_t(p.m * ldc), -1.0f, 1.0f, seed + 2);
  if (beta == 0) std::fill(c0.begin(), c0.end(), std::numeric_limits<float>::quiet_NaN());  // never read
  for (index_t i = 0; i < p.m; ++i)  // C's padding: a pattern that must survive
    for (index_t j = p.n; j < ldc; ++j) c0[std::size_t(i * ldc + j)] = test::from_bits(0x7fa5a5a5u);

  std::vector<const T*> pa, pb;
  std::vector<index_t> oa, ob, in_order(std::size_t(p.count));
  for (const index_t s : x.order) {
    pa.push_back(x.a_at(s));
    pb.push_back(x.b_at(s));
    oa.push_back(s * x.stride_a);
    ob.push_back(s * x.stride_b);
  }
  std::iota(in_order.begin(), in_order.end(), index_t(0));

  const lx::brgemm<T> ka(p.m, p.n, p.k, x.lda, x.ldb, ldc, beta, lx::batch_kind::address);
  const lx::brgemm<T> ko(p.m, p.n, p.k, x.lda, x.ldb, ldc, beta, lx::batch_kind::offset);
  const lx::brgemm<T> ks(p.m, p.n, p.k, x.lda, x.ldb, ldc, beta, lx::batch_kind::stride, x.stride_a, x.stride_b);
  auto by_address = c0, by_offset = c0, by_stride = c0;
  const auto run_a = [&] { ka(pa.data(), pb.data(), by_address.data(), p.count); };
  const auto run_o = [&] { ko(x.a.data(), oa.data(), x.b.data(), ob.data(), by_offset.data(), p.count); };
  const auto run_s = [&] { ks(x.a.data(), x.b.data(), by_stride.data(), p.count); };
  const bool va = usable(ka, run_a, t), vo = usable(ko, run_o, t), vs = usable(ks, run_s, t);
  if (va) run_a();
  if (vo) run_o();
  if (vs) run_s();
  if (va) CHECK(mismatches(p, x, x.order, beta, c0, by_address, ldc) == 0);
  if (vo) CHECK(mismatches(p, x, x.order, beta, c0, by_offset, ldc) == 0);
  if (vs) CHECK(mismatches(p, x, in_order, beta, c0, by_stride, ldc) == 0);
  if (va && vo) CHECK(same_bits(by_address, by_offset));  // offsets go in chunks of 64: still one sum
}

template <class T>
void check_all(tally& t) {
  // 1x1x1 and 7x13x5: odd k (bf16 pads k); 4x8x6 x 150: offsets in three chunks; 64^3 x 40: bf16 in three
  // packing chunks.
  const problem problems[] = {{32, 32, 32, 16}, {1, 1, 1, 1}, {1, 1, 1, 5},  {7, 13, 5, 4},  {13, 7, 2, 3},
                              {64, 64, 64, 2},  {4, 8, 6, 150}, {1, 33, 17, 2}, {64, 64, 64, 40}};
  std::uint64_t seed = 7000;
  for (const problem p : problems)
    for (const index_t pad : {0, 3})
      for (const float beta : {0.0f, 1.0f}) check_kinds<T>(p, pad, beta, seed += 3, t);
}

}  // namespace

TEST_CASE_TEMPLATE("libxsmm brgemm: every batch kind vs the double reference", T, float, bf16) {
  tally t;
  check_all<T>(t);
  t.report(std::is_same_v<T, float> ? "fp32" : "bf16");
}

TEST_CASE("libxsmm brgemm: count = 0 and empty shapes apply beta only") {
  tally t;
  std::vector<float> c(6, 2.0f);
  const float a = 1, b = 1;
  const float* pa = &a;
  const float* pb = &b;
  const lx::brgemm<float> k1(2, 3, 4, 4, 3, 3, 1.0f, lx::batch_kind::address);
  if (usable(k1, [&] { k1(&pa, &pb, c.data(), 0); }, t)) {
    k1(&pa, &pb, c.data(), 0);
    CHECK(c == std::vector<float>(6, 2.0f));
  }
  const lx::brgemm<float> k0(2, 3, 4, 4, 3, 3, 0.0f, lx::batch_kind::stride, 8, 12);
  if (usable(k0, [&] { k0(&a, &b, c.data(), 0); }, t)) {
    k0(&a, &b, c.data(), 0);
    CHECK(c == std::vector<float>(6, 0.0f));
  }
  // k = 0: no kernel needed, valid on every target.
  const lx::brgemm<bf16> kz(2, 3, 0, 0, 3, 3, 0.0f, lx::batch_kind::offset);
  CHECK(kz.valid());
  std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
  const index_t off = 0;
  kz(nullptr, &off, nullptr, &off, c.data(), 5);
  CHECK(c == std::vector<float>(6, 0.0f));
  t.report("count = 0");
}

TEST_CASE("libxsmm brgemm: kind mismatches and bad arguments throw tpp::error naming the argument") {
  std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64);
  const float* pa = a.data();
  const float* pb = b.data();
  const index_t offs[1] = {0};
  const lx::brgemm<float> ks(4, 4, 4, 4, 4, 4, 0.0f, lx::batch_kind::stride, 16, 16);
  CHECK_THROWS_WITH_AS(ks(&pa, &pb, c.data(), 1), doctest::Contains("tpp::libxsmm_brgemm: kind mismatch"), error);
  CHECK_THROWS_WITH_AS(ks(a.data(), offs, b.data(), offs, c.data(), 1), doctest::Contains("is for stride batches, called with offset arguments"), error);
  const lx::brgemm<float> ka(4, 4, 4, 4, 4, 4, 1.0f, lx::batch_kind::address);
  CHECK_THROWS_WITH_AS(ka(a.data(), b.data(), c.data(), 1), doctest::Contains("called with stride arguments"), error);
  const lx::brgemm<bf16> kb(4, 4, 4, 4, 4, 4, 1.0f, lx::batch_kind::offset);
  std::vector<bf16> h(64);
  CHECK_THROWS_WITH_AS(kb(h.data(), h.data(), c.data(), 1), doctest::Contains("kind mismatch"), error);
  if (ka.valid()) {
    CHECK_THROWS_WITH_AS(ka(&pa, &pb, c.data(), -1), doctest::Contains("count is negative"), error);
    CHECK_THROWS_WITH_AS(ka(&pa, &pb, nullptr, 1), doctest::Contains("c is null"), error);
    CHECK_THROWS_WITH_AS(ka(nullptr, &pb, c.data(), 1), doctest::Contains("a is null"), error);
  }

  using bk = lx::batch_kind;
  CHECK_THROWS_WITH_AS(lx::brgemm<float>(-1, 4, 4, 4, 4, 4, 0.0f, bk::address), doctest::Contains("m is negative"), error);
  CHECK_THROWS_WITH_AS(lx::brgemm<float>(4, 4, -2, 4, 4, 4, 0.0f, bk::address), doctest::Contains("k is negative"), error);
  CHECK_THROWS_WITH_AS(lx::brgemm<float>(4, 4, 4, 3, 4, 4, 0.0f, bk::address), doctest::Contains("lda (3)"), error);
  CHECK_THROWS_WITH_AS(lx::brgemm<float>(4, 4, 4, 4, 3, 4, 0.0f, bk::address), doctest::Contains("ldb (3)"), error);
  CHECK_THROWS_WITH_AS(lx::brgemm<float>(4, 4, 4, 4, 4, 3, 0.0f, bk::address), doctest::Contains("ldc (3)"), error);
  CHECK_THROWS_WITH_AS(lx::brgemm<float>(4, 4, 4, 4, 4, 4, 0.5f, bk::address), doctest::Contains("beta must be 0 or 1"),
                       error);
  CHECK_THROWS_WITH_AS(lx::brgemm<bf16>(4, 4, 4, 4, 4, 4, 1.0f, bk::stride, -1, 0),
                       doctest::Contains("stride_a is negative"), error);
}

#endif  // TPP_WITH_LIBXSMM

#if defined(TPP_WITH_LIBXSMM)
// brgemm_kernel picks LIBXSMM for exact fp32 blocks when it dispatches (then test/ops/gemm/brgemm.cpp checks it
// against the reference and tpp's own loops), and falls back to its own loops when LIBXSMM returns no
// kernel (LIBXSMM_TARGET=generic): either way the result is the reference's.
TEST_CASE("brgemm_kernel: LIBXSMM when it dispatches, tpp's loops when it returns no kernel, same results") {
  const tpp::index_t m = 32, n = 32, k = 32, count = 16;
  std::vector<float> a(std::size_t(m * k * count)), b(std::size_t(k * n * count)), c(std::size_t(m * n), 7.0f);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(int(i % 13) - 6) * 0.125f;  // exact in fp32 sums
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = float(int(i % 7) - 3) * 0.25f;
  const tpp::brgemm_kernel<> br({m, n, k});
  const bool generic = std::getenv("LIBXSMM_TARGET") != nullptr && std::string(std::getenv("LIBXSMM_TARGET")) == "generic";
  CHECK(br.uses_libxsmm() == !generic);
  MESSAGE("brgemm_kernel 32^3 x 16 runs ", std::string(br.uses_libxsmm() ? "LIBXSMM" : "tpp loops"));
  br.by_stride(tpp::view<const float>(a.data(), m, k), m * k, tpp::view<const float>(b.data(), k, n), k * n, count,
               tpp::view(c.data(), m, n));
  std::size_t bad = 0;
  for (tpp::index_t i = 0; i < m; ++i)
    for (tpp::index_t j = 0; j < n; ++j) {
      double want = 0;  // small multiples of 1/32: every partial sum is exact, so equality is required
      for (tpp::index_t t = 0; t < count; ++t)
        for (tpp::index_t q = 0; q < k; ++q)
          want += double(a[std::size_t(t * m * k + i * k + q)]) * double(b[std::size_t(t * k * n + q * n + j)]);
      if (double(c[std::size_t(i * n + j)]) != want) ++bad;
    }
  CHECK(bad == 0);
  CHECK_FALSE(tpp::brgemm_kernel<>({m, n, k}, {}, tpp::gemm_backend::tpp).uses_libxsmm());
  CHECK_FALSE(tpp::brgemm_kernel<>({m, n, k}, {2.0f}).uses_libxsmm());        // alpha != 1: tpp's loops
  CHECK_FALSE(tpp::brgemm_kernel<>({300, 32, 32}).uses_libxsmm());            // larger than the blocks
}
#endif
