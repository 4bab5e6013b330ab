// A convolution layer with an approximate multiplier, as the README shows it: y = relu(conv(x, w) + b)
// forward, both backward passes with the multiplier, and an exact (straight-through) backward for
// comparison. Prints how far the approximate gradients are from the exact ones.

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <tpp/tpp.hpp>

int main() {
  using tpp::dnn::conv2d;
  const tpp::dnn::conv2d_shape s{.n = 8, .h = 28, .w = 28, .c = 64, .k = 128, .r = 3, .s = 3, .pad_h = 1, .pad_w = 1};
  const tpp::index_t xr = s.n * s.h * s.w, yr = s.n * s.p() * s.q(), wr = s.r * s.s * s.c;
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const auto filled = [&](std::size_t n) {
    std::vector<float> v(n);
    for (float& e : v) e = u(gen);
    return v;
  };
  const std::vector<float> x = filled(std::size_t(xr * s.c)), w = filled(std::size_t(wr * s.k)),
                           bias = filled(std::size_t(s.k)), dy = filled(std::size_t(yr * s.k));
  std::vector<float> y(dy.size()), dx(x.size()), dw(w.size()), dx_exact(x.size()), dw_exact(w.size());
  const tpp::mat<const float> X{x.data(), xr, s.c, s.c}, W{w.data(), wr, s.k, s.k}, DY{dy.data(), yr, s.k, s.k};

  const conv2d<tpp::approx::mitchell<7>> conv(s);
  conv.forward(X, W, {y.data(), yr, s.k, s.k},
               tpp::epilogue::chain{tpp::epilogue::bias_per_col{bias.data()},
                                    tpp::epilogue::activation<tpp::unary_kind::relu>{}});
  conv.backward_data(DY, W, {dx.data(), xr, s.c, s.c});
  conv.backward_weights(X, DY, {dw.data(), wr, s.k, s.k});

  const conv2d<tpp::approx::exact> straight(s);
  straight.backward_data(DY, W, {dx_exact.data(), xr, s.c, s.c});
  straight.backward_weights(X, DY, {dw_exact.data(), wr, s.k, s.k});

  const auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * double(a[i] - b[i]), den += double(b[i]) * b[i];
    return std::sqrt(num / den);
  };
  std::size_t active = 0;
  for (float v : y) active += v > 0;
  std::printf("conv2d 8x28x28x64 -> 128, 3x3 pad 1, mitchell<7>: %.1f%% of outputs active after relu\n",
              100.0 * double(active) / double(y.size()));
  std::printf("relative L2 distance from the exact backward: dx %.4f, dw %.4f\n", rel(dx, dx_exact), rel(dw, dw_exact));
}
