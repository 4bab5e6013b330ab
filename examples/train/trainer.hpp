#pragma once
// tpp_train's training loop: mini-batch SGD (momentum, weight decay) or Adam with a cosine learning-rate
// schedule, softmax cross-entropy, a test-set evaluation after every epoch; every product of forward and
// backward through the multiplier (network.hpp).
//
// The schedule is PyTorch's, so bench/torch_train.py trains the same thing: a per-epoch shuffle, batches of
// B (the last partial batch dropped), the mean loss of each batch, lr_t = lr (1 + cos(pi t / T)) / 2 for
// step t of T, torch.optim.SGD's and Adam's update rules.
//
// Reproducible: the initialisation and each epoch's shuffle come from counter-based generators of the seed,
// and every sum has a fixed order for a given thread count, so the same seed and threads give the same
// numbers. Threads: each trains its share of every batch on its own network (struct replica), then the
// shares' gradients are summed. Data-parallel: with a communicator of R ranks, each rank computes the gradient of its
// B/R images of every global batch (scaled by 1/B, so the sum over ranks is the global batch's mean
// gradient) and one allreduce sums the gradients and the loss, held in one contiguous buffer.
//
// A number format (format.hpp, --format, --rounding) rounds the parameters after initialisation and after
// every optimizer step (the master copy is the rounded one, as Gupta et al. 2015), and the network rounds
// its activations and gradients; the test-set evaluation rounds its activations to nearest. --format
// binary (a QNN, network.hpp) clips the binarized layers' latent weights to [-1, 1] after every step, and
// evaluates with the binary fully connected layers through binary_gemm.
//
// Multipliers reach the program through a registry filled by one translation unit per policy
// (policy_slot.cpp), so the build compiles them in parallel and main.cpp instantiates none.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <numbers>
#include <numeric>
#include <type_traits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <omp.h>

#include "idx.hpp"
#include "network.hpp"

namespace tpp_train {

enum class optimizer_kind { sgd, adam };

// The processes a run is spread over: one (the default) or an MPI communicator (mpi.cpp).
struct communicator {
  int rank = 0, size = 1;
  virtual ~communicator() = default;
  virtual void allreduce_sum(std::span<float>) {}  // in place, every rank gets the sum
};

struct config {
  model_kind model = model_kind::lenet5;
  int epochs = 3;
  index_t batch = 64;
  double lr = 0.01;
  optimizer_kind optimizer = optimizer_kind::sgd;
  double momentum = 0.9, weight_decay = 0.0;
  bool cosine = true;
  std::uint64_t seed = 1;
  bool exact_backward = false;  // backward products exact (straight-through), forward through the multiplier
  number_format format;         // weights, activations and gradients rounded to it (default fp32: none)
  index_t limit = 0;            // train on the first `limit` images only (0: all)
  communicator* comm = nullptr;
  // Called every few steps (step done of steps, images/s so far) and after every epoch.
  std::function<void(int epoch, index_t step, index_t steps, double images_per_second)> on_progress;
};

struct epoch_result {
  int epoch = 0;
  double train_loss = 0, test_accuracy = 0, seconds = 0, images_per_second = 0;
};

struct run_result {
  std::string model, multiplier;
  bool exact_backward = false;
  std::vector<epoch_result> epochs;
  double test_accuracy() const noexcept { return epochs.empty() ? 0.0 : epochs.back().test_accuracy; }
};

// Sum over rows of the cross-entropy of softmax(logits) against labels; dlogits = (softmax - onehot) *
// scale. In double per row (a 10-way softmax costs nothing next to the layers).
inline double softmax_cross_entropy(const float* logits, const std::int32_t* labels, index_t rows,
                                    index_t classes, double scale, float* dlogits) {
  double total = 0;
  for (index_t i = 0; i < rows; ++i) {
    const float* z = logits + i * classes;
    float* d = dlogits + i * classes;
    const double m = *std::max_element(z, z + classes);
    double sum = 0;
    for (index_t j = 0; j < classes; ++j) sum += std::exp(double(z[j]) - m);
    const double lse = m + std::log(sum);
    total += lse - double(z[labels[i]]);
    for (index_t j = 0; j < classes; ++j)
      d[j] = float((std::exp(double(z[j]) - lse) - (j == labels[i] ? 1.0 : 0.0)) * scale);
  }
  return total;
}

// torch.optim.SGD (momentum, dampening 0, L2 weight decay) and torch.optim.Adam, over the flat parameters.
class optimizer {
 public:
  optimizer(const config& c, std::size_t n) : c_(c), m_(n, 0.0f), v_(c.optimizer == optimizer_kind::adam ? n : 0) {}

  void step(std::span<float> p, std::span<const float> g, double lr) {
    ++t_;
    const float wd = float(c_.weight_decay), a = float(lr);
    const std::size_t n = p.size();
    if (c_.optimizer == optimizer_kind::sgd) {
      const float mu = float(c_.momentum);
      const bool first = t_ == 1;
#pragma omp simd
      for (std::size_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * p[i];
        m_[i] = first ? d : mu * m_[i] + d;
        p[i] -= a * m_[i];
      }
    } else {
      constexpr float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
      const float c1 = float(1.0 - std::pow(double(b1), double(t_))), c2 = float(1.0 - std::pow(double(b2), double(t_)));
      const float rc2 = 1.0f / std::sqrt(c2);
#pragma omp simd
      for (std::size_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * p[i];
        m_[i] = b1 * m_[i] + (1 - b1) * d;
        v_[i] = b2 * v_[i] + (1 - b2) * d * d;
        p[i] -= a / c1 * m_[i] / (std::sqrt(v_[i]) * rc2 + eps);
      }
    }
  }

 private:
  const config& c_;
  std::vector<float> m_, v_;
  long t_ = 0;
};

// The order of epoch e's training images: a Fisher-Yates shuffle driven by a counter-based generator.
inline std::vector<std::int32_t> shuffled(index_t n, std::uint64_t seed, int epoch) {
  std::vector<std::int32_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  for (index_t i = n - 1; i > 0; --i) {
    const auto j = index_t(mix(mix(seed ^ 0x5eedull) + std::uint64_t(epoch) * 0x100000000ull + std::uint64_t(i)) %
                           std::uint64_t(i + 1));
    std::swap(order[std::size_t(i)], order[std::size_t(j)]);
  }
  return order;
}

// The threads of the process: each trains its own share of every batch on a network of its own (the
// layers run on the calling thread inside a parallel region), and the shares' gradients are summed in a
// fixed order. At LeNet's sizes this beats splitting every layer across threads (dozens of parallel
// regions and barriers per step, each layer ~100 us of work at batch 64).
template <class Fwd, class Bwd>
struct replica {
  network<Fwd, Bwd> net;
  index_t first, rows;  // its rows of the rank's batch
  std::vector<float> grads, dlogits;
  double loss = 0;
  replica(const architecture& a, index_t first, index_t rows, const number_format& f)
      : net(a, rows, f), first(first), rows(rows), grads(std::size_t(a.parameters)),
        dlogits(std::size_t(rows * a.classes())) {}
};

// The fraction of the split's images whose largest logit is their label's; chunks of images in parallel.
template <class Fwd, class Bwd>
double accuracy(const architecture& a, const split& s, std::span<const float> params, int threads,
                const number_format& f = {}) {
  const index_t chunk = std::min<index_t>(250, s.count), in = a.input_size(), classes = a.classes();
  const index_t chunks = (s.count + chunk - 1) / chunk;
  std::vector<index_t> correct(std::size_t(chunks), 0);
#pragma omp parallel num_threads(threads)
  {
    network<Fwd, Bwd> net(a, chunk, f);
    std::vector<float> tail;
#pragma omp for schedule(static)
    for (index_t c = 0; c < chunks; ++c) {
      const index_t b = c * chunk, rows = std::min(chunk, s.count - b);
      if (rows < chunk) {  // the last partial chunk: padded with zeros, ignored
        tail.assign(s.images.begin() + b * in, s.images.end());
        tail.resize(std::size_t(chunk * in), 0.0f);
      }
      net.set_rounding(0, 0, b, tpp::rounding::nearest_even);
      net.set_binary_gemm(f.kind == number_format::binary);
      const auto logits = net.forward(rows < chunk ? tail.data() : s.images.data() + b * in, params);
      for (index_t i = 0; i < rows; ++i) {
        const float* z = logits.data() + i * classes;
        correct[std::size_t(c)] += std::max_element(z, z + classes) - z == s.labels[std::size_t(b + i)];
      }
    }
  }
  return double(std::accumulate(correct.begin(), correct.end(), index_t(0))) / double(s.count);
}

template <class Fwd, class Bwd>
run_result train_with(const config& c, const dataset& data, std::string multiplier) {
  communicator single;
  communicator& comm = c.comm ? *c.comm : single;
  const architecture arch = make_architecture(c.model, data.train.rows, data.train.cols, 10);
  if (c.batch % comm.size != 0)
    throw std::invalid_argument("--batch " + std::to_string(c.batch) + " is not a multiple of the " +
                                std::to_string(comm.size) + " ranks");
  const index_t count = c.limit > 0 ? std::min(c.limit, data.train.count) : data.train.count;
  const index_t steps = count / c.batch, local = c.batch / comm.size, in = arch.input_size();
  if (steps < 1)
    throw std::invalid_argument("--batch " + std::to_string(c.batch) + " is larger than the " +
                                std::to_string(count) + " training images");
  const index_t classes = arch.classes();
  const int threads = int(std::min<index_t>(tpp::max_threads(), local));

  std::vector<float> params(std::size_t(arch.parameters)), grads(std::size_t(arch.parameters) + 1);
  initialise(arch, c.seed, params);
  quantizer weights(c.format);  // the master copy in the format: after initialisation and every step
  constexpr std::uint64_t weights_tensor = 0xffffffffull;
  weights.apply(params, rounding_key(c.seed, 0, weights_tensor), c.format.rounding);
  const bool binary = c.format.kind == number_format::binary;  // QNN: latent weights clipped to [-1, 1]
  optimizer opt(c, params.size());
  std::vector<std::unique_ptr<replica<Fwd, Bwd>>> shares;
  for (int t = 0; t < threads; ++t) {
    const index_t first = local * t / threads, last = local * (t + 1) / threads;
    shares.push_back(std::make_unique<replica<Fwd, Bwd>>(arch, first, last - first, c.format));
  }
  std::vector<float> x(std::size_t(local * in));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(local));
  const std::span<float> g{grads.data(), params.size()};
  const index_t n = index_t(params.size());

  run_result result{name(c.model), std::move(multiplier), c.exact_backward, {}};
  const double total_steps = double(steps) * c.epochs;
  for (int epoch = 1; epoch <= c.epochs; ++epoch) {
    const std::vector<std::int32_t> order = shuffled(count, c.seed, epoch);
    double loss = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    for (index_t step = 0; step < steps; ++step) {
      for (index_t i = 0; i < local; ++i) {
        const std::int32_t img = order[std::size_t(step * c.batch + comm.rank * local + i)];
        std::copy_n(data.train.images.begin() + index_t(img) * in, in, x.begin() + i * in);
        labels[std::size_t(i)] = data.train.labels[std::size_t(img)];
      }
      const auto global_step = std::uint64_t(epoch - 1) * std::uint64_t(steps) + std::uint64_t(step);
      const auto run_share = [&](replica<Fwd, Bwd>& r) {
        r.net.set_rounding(c.seed, global_step, comm.rank * local + r.first, c.format.rounding);
        const auto logits = r.net.forward(x.data() + r.first * in, params);
        r.loss = softmax_cross_entropy(logits.data(), labels.data() + r.first, r.rows, classes,
                                       1.0 / double(c.batch), r.dlogits.data());
        r.net.backward(r.dlogits.data(), params, r.grads);
      };
      if (threads == 1) {
        run_share(*shares[0]);
      } else {
#pragma omp parallel num_threads(threads)
        run_share(*shares[std::size_t(omp_get_thread_num())]);
      }
      // grads = the shares' sum, in thread order (deterministic for a thread count), then the loss
      tpp::parallel_for(n, [&](index_t b, index_t e) {
        std::copy(shares[0]->grads.begin() + b, shares[0]->grads.begin() + e, g.begin() + b);
        for (int t = 1; t < threads; ++t)
          for (index_t i = b; i < e; ++i) g[std::size_t(i)] += shares[std::size_t(t)]->grads[std::size_t(i)];
      });
      double batch_loss = 0;
      for (const auto& r : shares) batch_loss += r->loss;
      grads.back() = float(batch_loss);
      comm.allreduce_sum(grads);
      loss += double(grads.back()) / double(c.batch);
      const double t = double(global_step);
      opt.step(params, g, c.cosine ? c.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * t / total_steps)) : c.lr);
      weights.apply(params, rounding_key(c.seed, global_step + 1, weights_tensor), c.format.rounding);
      if (binary) clip_binary_weights(arch, params);
      if (c.on_progress && (step % 8 == 7 || step + 1 == steps))
        c.on_progress(epoch, step + 1, steps, double((step + 1) * c.batch) / elapsed());
    }
    epoch_result e{epoch, loss / double(steps), 0, elapsed(), 0};
    e.images_per_second = double(steps * c.batch) / e.seconds;
    if (comm.rank == 0) e.test_accuracy = accuracy<Fwd, Bwd>(arch, data.test, params, tpp::max_threads(), c.format);
    result.epochs.push_back(e);
  }
  return result;
}

template <class P>
run_result train(const config& c, const dataset& data) {
  if (c.exact_backward && !std::is_same_v<P, tpp::approx::exact>)
    return train_with<P, tpp::approx::exact>(c, data, P::name());
  return train_with<P, P>(c, data, P::name());
}

// The multipliers this program was built with: name -> its trainer, filled at start-up by policy_slot.cpp.
using trainer_fn = run_result (*)(const config&, const dataset&);
inline std::map<std::string, trainer_fn>& trainers() {
  static std::map<std::string, trainer_fn> t;
  return t;
}
inline bool register_trainer(const std::string& name, trainer_fn f) {
  trainers().emplace(name, f);
  return true;
}

}  // namespace tpp_train
