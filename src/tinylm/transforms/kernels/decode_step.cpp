// One decode step of a llama-style model for one sequence, in one C++ call.
//
// A batch-1 decode step is about 60 small operations per layer in PyTorch (norms, three
// matrix-vector products, RoPE, a cache write, attention, SwiGLU, residuals), each a few
// microseconds of dispatch for a few microseconds of work. Here the whole layer stack runs
// as plain loops over the model's own weight tensors (no copies), so a step costs what
// streaming its weights costs:
//
//   x = embedding[token]
//   for each layer:  h = rms_norm(x) ; q, k, v = h @ Wqkv.T ; RoPE(q, k) ; cache[slot] = k, v
//                    x += attention(q, cache[:slot+1]) @ Wproj.T
//                    h = rms_norm(x) ; x += (silu(h @ Wgate.T) * (h @ Wup.T)) @ Wdown.T
//   logits = rms_norm(x) @ Whead.T
//
// Matrices are float32 (out, in) or int8 (out, in) with one float scale per output row
// (tinylm's symmetric int8, widened to float in registers). Each matrix-vector product is
// split by output rows over torch's intra-op threads (at::parallel_for, OpenMP), so both
// cores stream their own half of every matrix. The reference is the PyTorch model
// (tinylm/model); tests check the logits against it.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

// Dot products with four independent accumulator chains (one chain of dependent FMAs would
// wait 4 cycles per FMA); 64 weights per round with AVX-512, a scalar tail for odd sizes.
inline float dot_f32(const float* w, const float* x, int64_t n) {
  int64_t i = 0;
  float s = 0.f;
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
  s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#endif
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

#if defined(__AVX512F__)
inline __m512 int8x16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
#endif

inline float dot_i8(const int8_t* w, const float* x, int64_t n) {
  int64_t i = 0;
  float s = 0.f;
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_fmadd_ps(int8x16(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(int8x16(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(int8x16(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(int8x16(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(int8x16(w + i), _mm512_loadu_ps(x + i), a0);
  s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#endif
  for (; i < n; ++i) s += static_cast<float>(w[i]) * x[i];
  return s;
}

// A weight matrix as the step reads it: float rows, or int8 rows times a per-row scale.
struct Matrix {
  torch::Tensor weight;  // (out, in), float32 or int8, contiguous
  torch::Tensor scale;   // (out,) float32 for int8; undefined for float32
  int64_t out = 0, in = 0;

  Matrix() = default;
  Matrix(torch::Tensor w, torch::Tensor s) : weight(w.contiguous()), out(w.size(0)), in(w.size(1)) {
    if (weight.scalar_type() == torch::kInt8) {
      TORCH_CHECK(s.defined() && s.numel() == out && s.scalar_type() == torch::kFloat, "int8 matrix needs (out,) float scales");
      scale = s.contiguous();
    } else {
      TORCH_CHECK(weight.scalar_type() == torch::kFloat, "matrices must be float32 or int8");
    }
  }

  bool int8() const { return scale.defined(); }

  // Row o . x (scaled for int8).
  float row_dot(int64_t o, const float* x) const {
    if (int8()) return dot_i8(weight.data_ptr<int8_t>() + o * in, x, in) * scale.data_ptr<float>()[o];
    return dot_f32(weight.data_ptr<float>() + o * in, x, in);
  }

  // Row o as floats (the embedding lookup).
  void row(int64_t o, float* y) const {
    if (int8()) {
      const int8_t* q = weight.data_ptr<int8_t>() + o * in;
      const float s = scale.data_ptr<float>()[o];
      for (int64_t i = 0; i < in; ++i) y[i] = static_cast<float>(q[i]) * s;
    } else {
      std::memcpy(y, weight.data_ptr<float>() + o * in, in * sizeof(float));
    }
  }
};

// Rows per task: small enough that both threads get a share of the smallest matrix.
constexpr int64_t GRAIN = 16;

void matvec(const Matrix& m, const float* x, float* y) {
  at::parallel_for(0, m.out, GRAIN, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) y[o] = m.row_dot(o, x);
  });
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0.0;  // double: the same result as torch's float kernel to within rounding, whatever the order
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = 1.f / std::sqrt(static_cast<float>(ss / n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * r * w[i];
}

struct Layer {
  torch::Tensor norm1, norm2;  // (C,) float
  Matrix qkv, proj, gate, up, down;
};

class DecodeStep {
 public:
  DecodeStep(std::vector<torch::Tensor> norms, std::vector<torch::Tensor> weights, std::vector<torch::Tensor> scales,
             torch::Tensor embedding, torch::Tensor embedding_scale, torch::Tensor final_norm,
             torch::Tensor cos, torch::Tensor sin, int64_t n_head, int64_t n_kv_head, double eps)
      : n_head_(n_head), n_kv_head_(n_kv_head), eps_(static_cast<float>(eps)), cos_(cos.contiguous()), sin_(sin.contiguous()),
        final_norm_(final_norm.contiguous()) {
    TORCH_CHECK(weights.size() == scales.size() && weights.size() % 5 == 1 && norms.size() * 5 == (weights.size() - 1) * 2,
                "decode step: 5 matrices and 2 norms per layer, then the head");
    const int64_t n_layer = static_cast<int64_t>(weights.size() / 5);
    auto matrix = [&](size_t i) { return Matrix(weights[i], scales[i].numel() ? scales[i] : torch::Tensor()); };
    for (int64_t l = 0; l < n_layer; ++l) {
      layers_.push_back({norms[2 * l].contiguous(), norms[2 * l + 1].contiguous(), matrix(5 * l), matrix(5 * l + 1),
                         matrix(5 * l + 2), matrix(5 * l + 3), matrix(5 * l + 4)});
    }
    head_ = matrix(weights.size() - 1);
    embedding_ = Matrix(embedding, embedding_scale.numel() ? embedding_scale : torch::Tensor());
    dim_ = embedding_.in;
    head_dim_ = cos_.size(1);
    hidden_ = layers_.at(0).gate.out;
    TORCH_CHECK(n_head_ * head_dim_ == dim_ && n_head_ % n_kv_head_ == 0, "decode step: head sizes do not add up");
    x_.resize(dim_);
    h_.resize(dim_);
    qkv_.resize((n_head_ + 2 * n_kv_head_) * head_dim_);
    att_.resize(dim_);
    ffn_.resize(hidden_);
  }

  // Runs `token` at position `slot` (its cache slot), writing its keys and values into
  // slot `slot` of k_cache / v_cache (n_layer, 1, n_kv_head, capacity, head_dim), and returns
  // the next token's logits (1, vocab).
  torch::Tensor step(int64_t token, int64_t slot, torch::Tensor k_cache, torch::Tensor v_cache) {
    TORCH_CHECK(token >= 0 && token < embedding_.out, "token id out of range");
    TORCH_CHECK(k_cache.scalar_type() == torch::kFloat && v_cache.scalar_type() == torch::kFloat &&
                k_cache.sizes() == v_cache.sizes() && k_cache.strides() == v_cache.strides(), "cache must be two float32 buffers alike");
    TORCH_CHECK(k_cache.dim() == 5 && k_cache.size(0) == static_cast<int64_t>(layers_.size()) && k_cache.size(1) == 1 &&
                k_cache.size(2) == n_kv_head_ && k_cache.size(4) == head_dim_ && k_cache.stride(4) == 1, "cache shape mismatch");
    TORCH_CHECK(slot >= 0 && slot < k_cache.size(3) && slot < cos_.size(0), "no room for this position");
    const int64_t D = head_dim_, H = n_head_, G = n_head_ / n_kv_head_, S = slot + 1;
    const int64_t s_layer = k_cache.stride(0), s_head = k_cache.stride(2), s_slot = k_cache.stride(3);
    float* kc = k_cache.data_ptr<float>();
    float* vc = v_cache.data_ptr<float>();
    const float* cos = cos_.data_ptr<float>() + slot * D;
    const float* sin = sin_.data_ptr<float>() + slot * D;
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    scores_.resize(H * S);

    float* x = x_.data();
    float* h = h_.data();
    embedding_.row(token, x);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& L = layers_[l];
      rms_norm(x, L.norm1.data_ptr<float>(), h, dim_, eps_);
      matvec(L.qkv, h, qkv_.data());
      // RoPE, "rotate half": pairs (i, i + D/2); the sin table's first half is stored negated.
      float tmp[1024];
      TORCH_CHECK(D <= 1024, "head_dim too large");
      for (int64_t head = 0; head < H + n_kv_head_; ++head) {
        float* v = qkv_.data() + head * D;
        std::memcpy(tmp, v, D * sizeof(float));
        for (int64_t i = 0; i < D; ++i) v[i] = tmp[i] * cos[i] + tmp[(i + D / 2) % D] * sin[i];
      }
      float* k_layer = kc + l * s_layer;
      float* v_layer = vc + l * s_layer;
      for (int64_t g = 0; g < n_kv_head_; ++g) {
        std::memcpy(k_layer + g * s_head + slot * s_slot, qkv_.data() + (H + g) * D, D * sizeof(float));
        std::memcpy(v_layer + g * s_head + slot * s_slot, qkv_.data() + (H + n_kv_head_ + g) * D, D * sizeof(float));
      }
      // Attention of each query head over the S filled slots of its key/value head.
      at::parallel_for(0, H, 1, [&](int64_t begin, int64_t end) {
        for (int64_t head = begin; head < end; ++head) {
          const float* q = qkv_.data() + head * D;
          const float* keys = k_layer + (head / G) * s_head;
          const float* values = v_layer + (head / G) * s_head;
          float* p = scores_.data() + head * S;
          float top = -INFINITY;
          for (int64_t s = 0; s < S; ++s) {
            p[s] = dot_f32(keys + s * s_slot, q, D) * scale;
            top = std::max(top, p[s]);
          }
          float total = 0.f;
          for (int64_t s = 0; s < S; ++s) total += (p[s] = std::exp(p[s] - top));
          float* out = att_.data() + head * D;
          std::fill(out, out + D, 0.f);
          for (int64_t s = 0; s < S; ++s) {
            const float a = p[s] / total;
            const float* vs = values + s * s_slot;
            for (int64_t i = 0; i < D; ++i) out[i] += a * vs[i];
          }
        }
      });
      matvec(L.proj, att_.data(), h);
      for (int64_t i = 0; i < dim_; ++i) x[i] += h[i];
      rms_norm(x, L.norm2.data_ptr<float>(), h, dim_, eps_);
      // SwiGLU: gate and up read the same h; one pass computes silu(gate) * up per hidden unit.
      at::parallel_for(0, hidden_, GRAIN, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          const float g = L.gate.row_dot(j, h);
          ffn_[j] = g / (1.f + std::exp(-g)) * L.up.row_dot(j, h);
        }
      });
      matvec(L.down, ffn_.data(), att_.data());
      for (int64_t i = 0; i < dim_; ++i) x[i] += att_[i];
    }
    rms_norm(x, final_norm_.data_ptr<float>(), h, dim_, eps_);
    auto logits = torch::empty({1, head_.out}, torch::kFloat);
    matvec(head_, h, logits.data_ptr<float>());
    return logits;
  }

 private:
  std::vector<Layer> layers_;
  Matrix head_, embedding_;
  int64_t n_head_, n_kv_head_, dim_ = 0, head_dim_ = 0, hidden_ = 0;
  float eps_;
  torch::Tensor cos_, sin_, final_norm_;
  std::vector<float> x_, h_, qkv_, att_, ffn_, scores_;
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<DecodeStep>(m, "DecodeStep")
      .def(pybind11::init<std::vector<torch::Tensor>, std::vector<torch::Tensor>, std::vector<torch::Tensor>, torch::Tensor,
                          torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, int64_t, int64_t, double>())
      .def("step", &DecodeStep::step, pybind11::call_guard<pybind11::gil_scoped_release>());
}
