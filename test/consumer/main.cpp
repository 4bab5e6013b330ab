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
  // The README's op example, as written there.
  {
    using namespace tpp;
    std::vector<float> a(64 * 32, 0.5f), o(64 * 32), bias(32, 1.0f), sums(64), w(32 * 32, 0.25f), y(64 * 32);
    const mat<float> A = view(a.data(), 64, 32), O = view(o.data(), 64, 32), bias_row = view(bias.data(), 1, 32);
    const mat<float> row_sums = view(sums.data(), 64, 1), W = view(w.data(), 32, 32), Y = view(y.data(), 64, 32);
    const unary_kernel<unary_kind::gelu_erf, approx::mitchell<7>> gelu(64, 32);   // made once for a shape
    gelu(A, O);                                                                  // called many times
    binary<binary_kind::add>(A, bias_row, O, {broadcast::none, broadcast::row}); // O = A + bias (1, 32)
    reduce<reduce_kind::sum>(A, row_sums, {reduce_dir::each_row});                // (64, 1)
    gemm<approx::bf16_rz>(A, W, Y, {.alpha = 1.0f, .beta = 0.0f, .trans_b = true});
    failures += y[7] != 4.0f;  // 32 products 0.5 x 0.25, exact in bf16
    const float* b = bias.data();
    std::vector<float> blocks_a(16 * 32 * 32, 0.5f), blocks_b(16 * 32 * 32, 0.25f), blocks_c(32 * 32);
    const float *a0 = blocks_a.data(), *b0 = blocks_b.data();
    float* c0 = blocks_c.data();
    const mat<float> X = A;
    gemm(X, W, Y, {}, epilogue::chain{epilogue::bias_per_col{b}, epilogue::activation<unary_kind::relu>{}});
    const brgemm_kernel<approx::mitchell<7>> br({32, 32, 32});                   // C (32, 32) = sum A_i B_i
    br.by_stride(view(a0, 32, 32), 32 * 32, view(b0, 32, 32), 32 * 32, 16, view(c0, 32, 32));  // 16 blocks 1024 apart
    failures += y[7] != 5.0f;            // relu(4 + 1)
    failures += blocks_c[100] != 64.0f;  // 512 Mitchell products of powers of two (exact): 0.125 each
    failures += o[5] != 1.5f;
    failures += sums[3] != 16.0f;
  }
  std::printf("consumer: %s\n", failures ? "FAILED" : "ok");
  return failures;
}
