// Uses the public contract (DESIGN.md section 3) through the installed package; exits non-zero on a
// wrong answer.
#include <cstdio>
#include <vector>

#include <tpp/tpp.hpp>

int main() {
  static_assert(std::is_same_v<tpp::index_t, std::int64_t>);
  std::vector<float> buf(6, 1.5f);
  tpp::mat<float> m = tpp::view(buf.data(), 2, 3);
  int failures = 0;
  failures += m(1, 2) != 1.5f;
  try {
    tpp::view(buf.data(), 2, 3, 2);
    ++failures;
  } catch (const tpp::error& e) {
    const std::invalid_argument& base = e;
    std::printf("expected error: %s\n", base.what());
  }
  failures += tpp::to_float(tpp::to_bf16_rne(1.00390625f)) != 1.0f;
  failures += tpp::to_float(tpp::to_bf16_rz(1.9999f)) != 1.9921875f;
  failures += tpp::approx::mitchell<7>::mul(1.5f, 1.5f) != 2.0f;     // 1 + .5 + .5 carries: 2 * (1.0)
  failures += tpp::approx::exact::mul(3.0f, 0.5f) != 1.5f;
  failures += tpp::approx::drum<4>::mul(1.0f, 1.0f) != 1.125f * 1.125f;
  failures += tpp::approx::lut<tpp::approx::mitchell_model, 7>::mul(-3.0f, 3.0f) != tpp::approx::mitchell<7>::mul(-3.0f, 3.0f);
  std::printf("consumer: %s\n", failures ? "FAILED" : "ok");
  return failures;
}
