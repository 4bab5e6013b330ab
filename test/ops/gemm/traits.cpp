// The GEMM paths a policy's traits declare (approx/gemm_traits.hpp): every registered policy and variant with
// a packed or table path gives, through gemm(), exactly the policy's products, in range (the packed or table
// path, zeros and denormals included) and out of it (the careful path: overflow, underflow, Inf, NaN). The
// list is the registry's, filtered by the trait, so a new multiplier with a GEMM path is tested here.

#include <cmath>
#include <limits>

#include <tpp/approx/registry.hpp>
#include <tpp/ops/gemm.hpp>

#include "approx/sweep.hpp"
#include "ops/gemm/gemm_support.hpp"

namespace {

using namespace tpp;

template <class P>
struct has_gemm_path
    : std::bool_constant<approx::gemm_traits<P>::path == approx::gemm_path::packed ||
                         approx::gemm_traits<P>::path == approx::gemm_path::table> {};

// The variants (a family's parameter range: its ends and where its path changes) in the configurations that
// sweep the whole catalogue (approx/sweep.hpp); the catalogue's own widths in the sampling ones.
using swept = std::conditional_t<test::policy_sample, approx::float_policies,
                                 approx::join_t<approx::float_policies, approx::policy_variants>>;
using gemm_path_policies = approx::tuple_t<approx::filter_t<swept, has_gemm_path>>;

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("gemm: packed and table paths equal the policy's products; out-of-range panels take the "
                          "careful path",
                          P, gemm_path_sweep) {
  // K = 1: every C element is 0 + P::mul(a_i, b_j), so it must equal the policy's product (+-0 alike).
  auto check_outer = [](const std::vector<float>& a, const std::vector<float>& b) {
    std::vector<float> c(a.size() * b.size());
    gemm<P>(view(a.data(), index_t(a.size()), 1), view(b.data(), 1, index_t(b.size())),
            view(c.data(), index_t(a.size()), index_t(b.size())));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
      for (std::size_t j = 0; j < b.size(); ++j) {
        const float want = P::mul(a[i], b[j]), got = c[i * b.size() + j];
        if (!(got == want || (std::isnan(got) && std::isnan(want))) && bad++ < 3)
          MESSAGE(P::name(), "(", a[i], ", ", b[j], ") = ", want, " but gemm gave ", got);
      }
    CHECK(bad == 0);
  };
  const auto normal_a = test::uniform(37, -3.0f, 3.0f, 1), normal_b = test::uniform(45, -2.0f, 2.0f, 2);
  check_outer(normal_a, normal_b);  // in range: the packed or table path
  auto zeros_a = normal_a, zeros_b = normal_b;  // zeros and denormals keep a block in range
  zeros_a[1] = 0.0f;
  zeros_a[2] = -0.0f;
  zeros_a[17] = 1e-41f;
  zeros_b[0] = -0.0f;
  zeros_b[5] = 0.0f;
  zeros_b[30] = -1e-42f;
  check_outer(zeros_a, zeros_b);
  // Products that overflow, fall below the normal range, or meet Inf, NaN, zeros and denormals: the
  // careful path must give exactly the policy's special values.
  auto wide_a = normal_a, wide_b = normal_b;
  wide_a[3] = 1e30f;
  wide_a[5] = 1e-20f;
  wide_a[6] = 0.0f;
  wide_a[7] = -1e-40f;  // denormal
  wide_b[2] = 1e20f;
  wide_b[4] = -1e-19f;  // with 1e-20: -1e-39, a denormal whose bf16 rounding is not 0
  check_outer(wide_a, normal_b);
  check_outer(normal_a, wide_b);
  check_outer(wide_a, wide_b);
  auto special_b = normal_b;
  special_b[1] = std::numeric_limits<float>::infinity();
  special_b[9] = std::numeric_limits<float>::quiet_NaN();
  check_outer(wide_a, special_b);
  // With bf16_rne an operand near FLT_MAX rounds to Inf while packing: also the careful path.
  auto near_max = normal_a;
  near_max[0] = 3.4e38f;
  check_outer(near_max, normal_b);
}
TEST_CASE_TEMPLATE_APPLY(gemm_path_sweep, gemm_path_policies);
