#pragma once
// The models tpp_train trains, built from tpp's dnn layers (DESIGN.md 3b, 8):
//
//   lenet5    conv 6@5x5 pad 2 -> relu -> maxpool 2 -> conv 16@5x5 -> relu -> maxpool 2 -> fc 120 -> relu
//             -> fc 84 -> relu -> fc 10          (LeNet-5 as ApproxTrain trains it; 61,706 parameters)
//   lenet300  fc 300 -> relu -> fc 100 -> relu -> fc 10   (LeNet-300-100; 266,610 parameters)
//
// An architecture is the list of layers without a batch size; a network<Fwd, Bwd> is its layer objects for
// one batch size, with the activations it keeps for backward. Fwd is the multiplier of every forward
// product, Bwd of every backward product (Bwd = Fwd: ApproxTrain's setting; Bwd = exact: the
// straight-through choice of AdaPT and TransAxx). Parameters live in one flat vector owned by the caller
// (so an optimiser step and an MPI_Allreduce each see one contiguous buffer); a layer holds offsets into it.
//
// Activations are NHWC (rows = pixels, columns = channels); the flatten before the first fully connected
// layer is free (the (N*H*W, C) rows of one image are one (1, H*W*C) row). ReLU is fused into the forward
// GEMM epilogue and into backward as a mask of the saved output. Max pooling saves its argmax.
//
// A number format other than fp32 (format.hpp) rounds every layer's output after its forward and the
// gradient flowing into every layer (after the ReLU mask) before its backward; set_rounding says which
// step's stochastic bits to draw and where this network's images sit in the whole batch.
//
// --format binary trains a QNN as Hubara et al.: the weight layers between the first and the last compute
// with sign(W) s (W the latent real weights the optimiser keeps, clipped to [-1, 1]; s = the power of two
// nearest 1/sqrt(fan_in), a constant of the layer that keeps pre-activations near the straight-through
// window where no batch normalisation does), and every hidden layer's output is sign(x) in place of the
// ReLU, its gradient passed straight through where |x| <= 1. The first and last layers' weights stay real.
// Backward uses the binarized weights; their gradient is the latent weights' (straight-through).
// Inference (set_binary_gemm) runs the fully connected layers whose input and weights are both binary
// through tpp::binary_gemm (xnor + popcount): s C + b, the float GEMM's result exactly (its products are
// +-s, a power of two, and its sums multiples of s far below 2^24 s).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <tpp/tpp.hpp>

#include "format.hpp"
#include "random.hpp"

namespace tpp_train {

using tpp::index_t;

enum class model_kind { lenet5, lenet300 };

inline model_kind parse_model(const std::string& s) {
  if (s == "lenet5") return model_kind::lenet5;
  if (s == "lenet300") return model_kind::lenet300;
  throw std::invalid_argument("unknown model '" + s + "' (lenet5, lenet300)");
}
inline const char* name(model_kind m) { return m == model_kind::lenet5 ? "lenet5" : "lenet300"; }

// One layer, without the batch: its input image (h, w, c; a fully connected layer's is (1, 1, features)),
// its output, and where its weights and bias start in the flat parameter vector.
struct layer_spec {
  enum kind_t { conv, pool, linear } kind = linear;
  index_t h = 1, w = 1, c = 0;        // input
  index_t oh = 1, ow = 1, oc = 0;     // output
  index_t r = 1, pad = 0;             // conv: r x r filter, padding; pool: r x r window, stride r
  bool relu = false;
  index_t weights = 0, bias = 0;      // offsets of W (rows, oc) and b (oc) in the parameters
  index_t fan_in() const noexcept { return kind == conv ? r * r * c : c; }
  index_t weight_rows() const noexcept { return kind == conv ? r * r * c : c; }
  index_t in_size() const noexcept { return h * w * c; }
  index_t out_size() const noexcept { return oh * ow * oc; }
};

struct architecture {
  model_kind model = model_kind::lenet5;
  std::vector<layer_spec> layers;
  index_t parameters = 0;
  index_t input_size() const noexcept { return layers.front().in_size(); }
  index_t classes() const noexcept { return layers.back().out_size(); }
};

inline architecture make_architecture(model_kind m, index_t h, index_t w, index_t classes) {
  architecture a{m, {}, 0};
  index_t ch = h, cw = w, cc = 1;
  const auto add = [&](layer_spec l) {
    l.h = ch, l.w = cw, l.c = cc;
    if (l.kind == layer_spec::conv) {
      l.oh = ch + 2 * l.pad - l.r + 1, l.ow = cw + 2 * l.pad - l.r + 1;
    } else if (l.kind == layer_spec::pool) {
      l.oh = ch / l.r, l.ow = cw / l.r, l.oc = cc;
    } else {
      l.c = ch * cw * cc, l.h = l.w = 1;  // the flatten
    }
    if (l.oh < 1 || l.ow < 1)
      throw std::invalid_argument("images of " + std::to_string(h) + "x" + std::to_string(w) + " are too small for " +
                                  name(m));
    if (l.kind != layer_spec::pool) {
      l.weights = a.parameters;
      l.bias = l.weights + l.weight_rows() * l.oc;
      a.parameters = l.bias + l.oc;
    }
    ch = l.oh, cw = l.ow, cc = l.oc;
    a.layers.push_back(l);
  };
  using L = layer_spec;
  if (m == model_kind::lenet5) {
    add({.kind = L::conv, .oc = 6, .r = 5, .pad = 2, .relu = true});
    add({.kind = L::pool, .r = 2});
    add({.kind = L::conv, .oc = 16, .r = 5, .relu = true});
    add({.kind = L::pool, .r = 2});
    add({.kind = L::linear, .oc = 120, .relu = true});
    add({.kind = L::linear, .oc = 84, .relu = true});
  } else {
    add({.kind = L::linear, .oc = 300, .relu = true});
    add({.kind = L::linear, .oc = 100, .relu = true});
  }
  add({.kind = L::linear, .oc = classes});
  return a;
}

// PyTorch's default initialisation (kaiming_uniform with a = sqrt(5) for weights, the same bound for
// biases): every parameter uniform in +-1/sqrt(fan_in), drawn from a counter-based generator so the same
// seed gives the same network on any machine and thread count.
inline void initialise(const architecture& a, std::uint64_t seed, std::span<float> params) {
  for (const layer_spec& l : a.layers) {
    if (l.kind == layer_spec::pool) continue;
    const double bound = 1.0 / std::sqrt(double(l.fan_in()));
    for (index_t i = l.weights; i < l.bias + l.oc; ++i)
      params[std::size_t(i)] = float((2.0 * uniform01(seed, 1, std::uint64_t(i)) - 1.0) * bound);
  }
}

// --format binary: whether layer i computes with binarized weights (a weight layer, not the first or last).
inline bool binary_weights(const architecture& a, std::size_t i) noexcept {
  std::size_t first = 0, last = 0, n = 0;
  for (std::size_t j = 0; j < a.layers.size(); ++j)
    if (a.layers[j].kind != layer_spec::pool) (n++ == 0 ? first : last) = j;
  return a.layers[i].kind != layer_spec::pool && i != first && i != last;
}
inline float binary_scale(const layer_spec& l) noexcept {
  return std::ldexp(1.0f, -int(std::lround(0.5 * std::log2(double(l.fan_in())))));
}
// out = params with the binarized layers' weights replaced by sign(w) s (-s where w < 0, as tpp::binarize).
inline void binarize_weights(const architecture& a, std::span<const float> params, std::vector<float>& out) {
  out.assign(params.begin(), params.end());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    if (!binary_weights(a, i)) continue;
    const layer_spec& l = a.layers[i];
    const float s = binary_scale(l);
    for (index_t k = l.weights; k < l.bias; ++k) out[std::size_t(k)] = params[std::size_t(k)] < 0.0f ? -s : s;
  }
}
// The latent weights of the binarized layers clipped to [-1, 1] (after every optimiser step).
inline void clip_binary_weights(const architecture& a, std::span<float> params) noexcept {
  for (std::size_t i = 0; i < a.layers.size(); ++i)
    if (binary_weights(a, i))
      for (index_t k = a.layers[i].weights; k < a.layers[i].bias; ++k)
        params[std::size_t(k)] = std::clamp(params[std::size_t(k)], -1.0f, 1.0f);
}
// y = sign(x) (-1 where x < 0, else +1); and its straight-through backward: dy = 0 where |x| > 1.
inline void sign_activation(const float* x, float* y, index_t n) noexcept {
  for (index_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? -1.0f : 1.0f;
}
inline void straight_through(const float* x, float* dy, index_t n) noexcept {
  for (index_t i = 0; i < n; ++i) dy[i] = std::abs(x[i]) <= 1.0f ? dy[i] : 0.0f;
}

// A binary fully connected layer's inference: y (batch, out) = s binary_gemm(sign(x), sign(W)) + b, with
// x (batch, in) and W (in, out) of +-1 and +-s (only their signs are read). Holds its packing buffers.
class binary_linear {
 public:
  void forward(const float* x, const float* w, const float* b, float s, index_t batch, index_t in, index_t out,
               float* y) {
    const index_t words = tpp::packed_words(in);
    a_.resize(std::size_t(batch * words)), bt_.resize(std::size_t(out * words));
    wt_.resize(std::size_t(out * in)), c_.resize(std::size_t(batch * out));
    for (index_t k = 0; k < in; ++k)  // W^T: binary_gemm packs B along K per column
      for (index_t j = 0; j < out; ++j) wt_[std::size_t(j * in + k)] = w[k * out + j];
    tpp::binarize(tpp::mat<const float>{x, batch, in, in}, tpp::mat<std::uint64_t>{a_.data(), batch, words, words});
    tpp::binarize(tpp::mat<const float>{wt_.data(), out, in, in}, tpp::mat<std::uint64_t>{bt_.data(), out, words, words});
    tpp::binary_gemm(tpp::mat<const std::uint64_t>{a_.data(), batch, words, words},
                     tpp::mat<const std::uint64_t>{bt_.data(), out, words, words},
                     tpp::mat<std::int32_t>{c_.data(), batch, out, out}, in);
    for (index_t i = 0; i < batch; ++i)
      for (index_t j = 0; j < out; ++j) y[i * out + j] = float(c_[std::size_t(i * out + j)]) * s + b[j];
  }

 private:
  std::vector<std::uint64_t> a_, bt_;
  std::vector<float> wt_;
  std::vector<std::int32_t> c_;
};

template <class Fwd, class Bwd>
class network {
 public:
  network(const architecture& a, index_t batch, number_format f = {})
      : arch_(&a), batch_(batch), quant_(f), binary_(f.kind == number_format::binary) {
    std::size_t largest = 0;
    acts_.resize(a.layers.size() + 1);
    for (const layer_spec& l : a.layers) {
      const index_t n = batch;
      if (l.kind == layer_spec::conv) {
        const tpp::dnn::conv2d_shape s{.n = n, .h = l.h, .w = l.w, .c = l.c, .k = l.oc, .r = l.r, .s = l.r,
                                       .pad_h = l.pad, .pad_w = l.pad};
        ops_.emplace_back(conv_ops{tpp::dnn::conv2d<Fwd>(s), tpp::dnn::conv2d<Bwd>(s)});
      } else if (l.kind == layer_spec::pool) {
        const tpp::dnn::pool2d_shape s{.n = n, .h = l.h, .w = l.w, .c = l.c, .r = l.r, .s = l.r, .stride_h = l.r,
                                       .stride_w = l.r};
        ops_.emplace_back(pool_ops{tpp::dnn::pool2d<Fwd>(s), std::vector<std::int32_t>(std::size_t(n * l.out_size()))});
      } else {
        const tpp::dnn::linear_shape s{.batch = n, .in = l.c, .out = l.oc};
        ops_.emplace_back(linear_ops{tpp::dnn::linear<Fwd>(s), tpp::dnn::linear<Bwd>(s)});
      }
      largest = std::max({largest, std::size_t(n * l.in_size()), std::size_t(n * l.out_size())});
    }
    for (std::size_t i = 1; i < acts_.size(); ++i)
      acts_[i].resize(std::size_t(batch * a.layers[i - 1].out_size()));
    if (binary_) {
      signs_.resize(acts_.size());
      for (std::size_t i = 1; i < acts_.size(); ++i)
        if (a.layers[i - 1].relu) signs_[i].resize(acts_[i].size());
    }
    grad_[0].resize(largest), grad_[1].resize(largest);
  }

  index_t batch() const noexcept { return batch_; }

  // The rounding of the next forward and backward: the run's seed and step (the stochastic bits' key), the
  // index of this network's first image in the whole batch, and the mode (inference: nearest).
  void set_rounding(std::uint64_t seed, std::uint64_t step, index_t first_image, tpp::rounding r) noexcept {
    seed_ = seed, step_ = step, first_ = first_image, rounding_ = r;
  }
  // --format binary, inference: binary fully connected layers through binary_gemm (forward only: the
  // training pass keeps the float GEMMs, whose products go through the multiplier).
  void set_binary_gemm(bool on) noexcept { binary_gemm_ = on; }
  index_t binary_gemm_calls() const noexcept { return binary_gemm_calls_; }

  // logits (batch, classes) of x (batch, input size); keeps every layer's output for backward.
  std::span<const float> forward(const float* x, std::span<const float> params) {
    const auto& layers = arch_->layers;
    const float* in = x;
    if (binary_) binarize_weights(*arch_, params, binarized_);
    const float* p = binary_ ? binarized_.data() : params.data();
    bool binary_input = false;  // in is +-1: a binarized layer's signs, or their max pooling
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const layer_spec& l = layers[i];
      float* out = acts_[i + 1].data();
      if (binary_gemm_ && binary_input && l.kind == layer_spec::linear && binary_weights(*arch_, i)) {
        bin_linear_.forward(in, p + l.weights, p + l.bias, binary_scale(l), batch_, l.c, l.oc, out);
        ++binary_gemm_calls_;
      } else {
        std::visit(overloaded{
                       [&](const conv_ops& o) {
                         conv_forward(o.fwd, l, in, p, out);
                       },
                       [&](pool_ops& o) {
                         o.op.forward(rows(in, l.h * l.w, l.c), rows(out, l.oh * l.ow, l.oc),
                                      {o.argmax.data(), batch_ * l.oh * l.ow, l.oc, l.oc});
                       },
                       [&](const linear_ops& o) {
                         linear_forward(o.fwd, l, in, p, out);
                       }},
                   ops_[i]);
      }
      round(out, l, 2 * i);
      in = out;
      if (binary_ && l.relu) {  // out holds the pre-activation for the straight-through backward
        sign_activation(out, signs_[i + 1].data(), batch_ * l.out_size());
        in = signs_[i + 1].data();
      }
      binary_input = binary_ && (l.relu || (l.kind == layer_spec::pool && binary_input));
    }
    input_ = x;
    return {acts_.back().data(), acts_.back().size()};
  }

  // grads (the parameters' size) = the gradient of the loss whose logits' gradient is dlogits (batch,
  // classes), for the x and params of the last forward. Overwrites grads.
  void backward(const float* dlogits, std::span<const float> params, std::span<float> grads) {
    const auto& layers = arch_->layers;
    const float* p = binary_ ? binarized_.data() : params.data();
    float* g = grads.data();
    float* dy = grad_[0].data();
    std::copy(dlogits, dlogits + batch_ * layers.back().out_size(), dy);
    for (std::size_t i = layers.size(); i-- > 0;) {
      const layer_spec& l = layers[i];
      const float* x = i == 0 ? input_ : binary_ && layers[i - 1].relu ? signs_[i].data() : acts_[i].data();
      const float* y = acts_[i + 1].data();
      float* dx = i == 0 ? nullptr : (dy == grad_[0].data() ? grad_[1].data() : grad_[0].data());
      if (l.relu) (binary_ ? straight_through : relu_mask)(y, dy, batch_ * l.out_size());
      round(dy, l, 2 * i + 1);
      std::visit(overloaded{
                     [&](const conv_ops& o) {
                       const index_t xr = batch_ * l.h * l.w, yr = batch_ * l.oh * l.ow, wr = l.weight_rows();
                       const tpp::mat<const float> DY{dy, yr, l.oc, l.oc}, W{p + l.weights, wr, l.oc, l.oc};
                       tpp::dnn::bias_gradient(DY, std::span<float>(g + l.bias, std::size_t(l.oc)));
                       o.bwd.backward_weights({x, xr, l.c, l.c}, DY, {g + l.weights, wr, l.oc, l.oc});
                       if (dx) o.bwd.backward_data(DY, W, {dx, xr, l.c, l.c});
                     },
                     [&](pool_ops& o) {
                       o.op.backward(rows(dy, l.oh * l.ow, l.oc), rows(dx, l.h * l.w, l.c),
                                     {o.argmax.data(), batch_ * l.oh * l.ow, l.oc, l.oc});
                     },
                     [&](const linear_ops& o) {
                       const tpp::mat<const float> DY{dy, batch_, l.oc, l.oc}, W{p + l.weights, l.c, l.oc, l.oc};
                       o.bwd.backward_weights({x, batch_, l.c, l.c}, DY, {g + l.weights, l.c, l.oc, l.oc},
                                              std::span<float>(g + l.bias, std::size_t(l.oc)));
                       if (dx) o.bwd.backward_data(DY, W, {dx, batch_, l.c, l.c});
                     }},
                 ops_[i]);
      if (dx) dy = dx;
    }
  }

 private:
  template <class... F>
  struct overloaded : F... {
    using F::operator()...;
  };
  template <class... F>
  overloaded(F...) -> overloaded<F...>;

  struct conv_ops {
    tpp::dnn::conv2d<Fwd> fwd;
    tpp::dnn::conv2d<Bwd> bwd;
  };
  struct pool_ops {
    tpp::dnn::pool2d<Fwd> op;
    std::vector<std::int32_t> argmax;
  };
  struct linear_ops {
    tpp::dnn::linear<Fwd> fwd;
    tpp::dnn::linear<Bwd> bwd;
  };

  template <class E>
  tpp::mat<E> rows(E* p, index_t pixels, index_t c) const noexcept {
    return {p, batch_ * pixels, c, c};
  }

  template <class Op>
  static void with_epilogue(bool relu, const float* bias, Op&& run) {
    using namespace tpp::epilogue;
    if (relu)
      run(chain{bias_per_col{bias}, activation<tpp::unary_kind::relu>{}});
    else
      run(bias_per_col{bias});
  }

  void conv_forward(const tpp::dnn::conv2d<Fwd>& op, const layer_spec& l, const float* x, const float* p,
                    float* y) const {
    with_epilogue(l.relu && !binary_, p + l.bias, [&](const auto& ep) {
      op.forward({x, batch_ * l.h * l.w, l.c, l.c}, {p + l.weights, l.weight_rows(), l.oc, l.oc},
                 {y, batch_ * l.oh * l.ow, l.oc, l.oc}, ep);
    });
  }
  void linear_forward(const tpp::dnn::linear<Fwd>& op, const layer_spec& l, const float* x, const float* p,
                      float* y) const {
    with_epilogue(l.relu && !binary_, p + l.bias, [&](const auto& ep) {
      op.forward({x, batch_, l.c, l.c}, {p + l.weights, l.c, l.oc, l.oc}, {y, batch_, l.oc, l.oc}, ep);
    });
  }

  // v (batch * oh * ow, oc), a layer's output or its gradient, rounded to the format (tensor: its key).
  void round(float* v, const layer_spec& l, std::uint64_t tensor) {
    if (!quant_.format().rounds()) return;
    const index_t pixels = l.oh * l.ow;
    quant_.apply({v, batch_ * pixels, l.oc, l.oc}, rounding_key(seed_, step_, tensor), first_ * pixels, rounding_);
  }

  // dy *= (y > 0): the ReLU's backward, from its saved output.
  static void relu_mask(const float* y, float* dy, index_t n) noexcept {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  }

  const architecture* arch_;
  index_t batch_;
  std::vector<std::variant<conv_ops, pool_ops, linear_ops>> ops_;
  std::vector<std::vector<float>> acts_;  // acts_[i + 1]: layer i's output
  std::vector<float> grad_[2];            // the gradient flowing back, ping-pong
  const float* input_ = nullptr;
  quantizer quant_;
  std::uint64_t seed_ = 0, step_ = 0;
  index_t first_ = 0;
  tpp::rounding rounding_ = tpp::rounding::nearest_even;
  bool binary_;                            // --format binary
  std::vector<std::vector<float>> signs_;  // binary: signs_[i + 1] = sign(acts_[i + 1]) after a hidden layer
  std::vector<float> binarized_;           // binary: the parameters with binarized weights
  bool binary_gemm_ = false;
  index_t binary_gemm_calls_ = 0;
  binary_linear bin_linear_;
};

}  // namespace tpp_train
