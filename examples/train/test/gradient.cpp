// The whole network's gradient (every layer's backward, the loss's, the flatten and the fused ReLUs)
// against central differences of the loss, for both models with the exact multiplier and with forward
// and backward through mitchell<7> (there the analytic gradient is the multiplier's own backward, so it is
// compared with the exact-backward gradient's direction instead: see the second test).

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "trainer.hpp"

namespace {

using namespace tpp_train;

struct problem {
  architecture arch;
  index_t batch = 3;
  std::vector<float> x, params;
  std::vector<std::int32_t> labels;
  explicit problem(model_kind m) : arch(make_architecture(m, 28, 28, 10)) {
    x.resize(std::size_t(batch * arch.input_size()));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(2.0 * uniform01(7, 2, i) - 1.0);
    params.resize(std::size_t(arch.parameters));
    initialise(arch, 3, params);
    for (index_t i = 0; i < batch; ++i) labels.push_back(std::int32_t(i * 3 % 10));
  }
};

// The mean loss of the batch, and its gradient.
template <class F, class B>
double loss(network<F, B>& net, const problem& p, std::vector<float>* grad) {
  const auto logits = net.forward(p.x.data(), p.params);
  std::vector<float> d(logits.size());
  const double l = softmax_cross_entropy(logits.data(), p.labels.data(), p.batch, 10, 1.0 / double(p.batch), d.data());
  if (grad) {
    grad->resize(p.params.size());
    net.backward(d.data(), p.params, *grad);
  }
  return l / double(p.batch);
}

}  // namespace

TEST_CASE("tpp_train: the network's gradient equals central differences of the loss (exact)") {
  for (model_kind m : {model_kind::lenet5, model_kind::lenet300}) {
    CAPTURE(name(m));
    problem p(m);
    network<tpp::approx::exact, tpp::approx::exact> net(p.arch, p.batch);
    std::vector<float> g;
    loss(net, p, &g);
    // Every layer's weights and biases: 12 sampled entries each.
    int checked = 0, off = 0;
    for (const layer_spec& l : p.arch.layers) {
      if (l.kind == layer_spec::pool) continue;
      for (index_t t = 0; t < 12; ++t) {
        const index_t i = t < 8 ? l.weights + index_t(uniform01(5, 9, std::uint64_t(t + 31 * checked)) * double(l.bias - l.weights))
                                : l.bias + (t - 8) % l.oc;
        // Central difference at h = 1e-3: truncation O(h^2 f'''), about 1e-6; the fp32 rounding of the loss
        // (2^-24 x its size 2.3, times the cancellation over ~1e4 summed terms: ~1e-6) / h: about 1e-4.
        constexpr float h = 1e-3f;
        const float keep = p.params[std::size_t(i)];
        p.params[std::size_t(i)] = keep + h;
        const double up = loss(net, p, nullptr);
        p.params[std::size_t(i)] = keep - h;
        const double down = loss(net, p, nullptr);
        p.params[std::size_t(i)] = keep;
        const double step = double(float(keep + h)) - double(float(keep - h));  // the step fp32 took
        const double fd = (up - down) / step, an = g[std::size_t(i)];
        // A ReLU or max-pool switch inside [-h, h] makes the loss non-smooth there: allowed in 1 of 24.
        if (std::abs(fd - an) > 3e-4 + 0.01 * std::abs(an)) {
          ++off;
          MESSAGE("param " << i << ": analytic " << an << ", central difference " << fd);
        }
        ++checked;
      }
    }
    CHECK(checked >= 36);
    CHECK(off * 24 <= checked);
  }
}

TEST_CASE("tpp_train: backward through mitchell<7> stays close to the exact gradient; exact backward equals it") {
  problem p(model_kind::lenet5);
  network<tpp::approx::mitchell<7>, tpp::approx::mitchell<7>> approx_net(p.arch, p.batch);
  network<tpp::approx::mitchell<7>, tpp::approx::exact> straight(p.arch, p.batch);
  network<tpp::approx::exact, tpp::approx::exact> exact_net(p.arch, p.batch);
  std::vector<float> ga, gs, ge;
  const double la = loss(approx_net, p, &ga), ls = loss(straight, p, &gs), le = loss(exact_net, p, &ge);
  CHECK(la == ls);  // the same forward products
  // Mitchell's products are within 11.1% of exact, biased low: the loss moves, but not far.
  CHECK(std::abs(la - le) < 0.2 * le);
  double dot = 0, na = 0, ne = 0;
  for (std::size_t i = 0; i < ga.size(); ++i) dot += double(ga[i]) * ge[i], na += double(ga[i]) * ga[i], ne += double(ge[i]) * ge[i];
  CHECK(dot / std::sqrt(na * ne) > 0.9);
  CHECK(ga != gs);  // the backward multiplier matters
}
