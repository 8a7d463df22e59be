// One decode step of a llama-style model for one sequence or a few (a batch's rows), in one C++ call.
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
// Matrices are float32 (out, in), int8 (out, in) with one float scale per output row, or int4
// (out, in / 2) nibbles with one scale per group of 32 inputs (tinylm's symmetric int8 / int4).
// Integer weights multiply the activation vector quantized to int8 per block of 32 (as
// llama.cpp's Q8_0 x Q8_0 dot does): int32 sums with AVX-512 VNNI where the CPU has it (the
// build is per CPU, -march=native), plain loops otherwise; or, for int8, float activations
// (the weights widened to float in registers: the PyTorch model's numbers, slower). The int8
// weights stay the checkpoint's own tensors, read in place. Each matrix product is
// split by output rows over torch's intra-op threads (at::parallel_for, OpenMP), so both
// cores stream their own half of every matrix; with several sequences each weight row is read
// once for all of them (from L1 after the first), so a batch costs little more weight traffic than
// one sequence and the int8 / int4 products stay integer products (PyTorch's batch path widens
// int8 weights to float). The reference is the PyTorch model
// (tinylm/model); tests check the logits against it.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define TINYLM_VNNI 1
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

// The activation vector of a product with integer weights, quantized as llama.cpp's Q8_0 does:
// blocks of 32 inputs, each with its own scale d = max|x| / 127 and q = round(x / d) in
// -127..127. Integer weights then multiply it in integers (an int32 sum per block) and the float
// scales are applied once per block: y_o = s_o * sum_b d_b * sum_{i in b} w_oi q_i (int8, one
// weight scale per row), or sum_b s_ob d_b * sum_{i in b} (u_oi - 8) q_i (int4, group 32 = block).
//
// With AVX-512 VNNI one vpdpbusd multiplies 64 weight bytes by 64 activation bytes into 16 int32
// lanes, lane k summing 4 products; its first operand is unsigned, so the weights are made
// unsigned (int8: w ^ 0x80 = w + 128; int4: the stored nibble u = q + 8 already is) and each
// lane's accumulator starts at minus that offset times the lane's activations, which is known
// once per vector: the lanes then hold exact signed block sums. Per chunk this keeps, per lane,
// that start value and the scale d of the lane's block.
//
// int8 chunks are 64 inputs (one 64-byte load of weights): lane k holds inputs 4k..4k+3.
// int4 chunks are 128 inputs, one 64-byte load of nibbles: the 64 low nibbles are the chunk's
// even inputs and the 64 high ones its odd inputs (pack_int4's order), so the activation vector is
// stored once per product in that order (64 even, then 64 odd inputs per chunk) and two vpdpbusd
// into the same accumulator cover the whole load. Lane k then sums inputs 8k..8k+7, all in one
// group of 32 (lanes 4g..4g+3 hold group g of the chunk), so a group's weight scale and block scale
// apply to whole lanes. This halves the instructions per int4 weight against 64-input chunks (the
// loop was instruction-bound, docs/compression.md): one load, two masks, one shift, two vpdpbusd,
// and per 128 weights one scale load and permute.
constexpr int64_t BLOCK = 32;
constexpr int64_t CHUNK = 64;    // int8 inputs per vpdpbusd
constexpr int64_t CHUNK4 = 128;  // int4 inputs per 64-byte load

enum class Kind { F32, I8, I4 };

struct QuantizedVector {
  int64_t n = 0;
  std::vector<int8_t> q;        // (chunks of 128) natural order, zero padded
  std::vector<float> d;         // (blocks, padded to whole chunks of 128) block scales, 0 for padding
  std::vector<int8_t> q4;       // int4 only: per chunk of 128, its 64 even inputs then its 64 odd ones
  std::vector<float> lane_d;    // (chunks * 16) scale of each lane's block
  std::vector<int32_t> lane_c;  // (chunks * 16) accumulator start of each lane

  void quantize(const float* x, int64_t size, Kind kind) {
    n = size;
    const int64_t padded = (n + CHUNK4 - 1) / CHUNK4 * CHUNK4;
    q.assign(padded, 0);
    d.assign(padded / BLOCK, 0.f);
    for (int64_t b = 0; b * BLOCK < n; ++b) {
      const int64_t lo = b * BLOCK, hi = std::min(n, lo + BLOCK);
      float top = 0.f;
      for (int64_t i = lo; i < hi; ++i) top = std::max(top, std::fabs(x[i]));
      d[b] = top / 127.f;
      if (top == 0.f) continue;  // an all-zero block stays zero
      const float inv = 127.f / top;
      for (int64_t i = lo; i < hi; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * inv));
    }
#ifdef TINYLM_VNNI
    if (kind == Kind::I4) {
      const int64_t chunks = padded / CHUNK4;
      q4.resize(padded);
      lane_d.assign(chunks * 16, 0.f);
      lane_c.assign(chunks * 16, 0);
      for (int64_t c = 0; c < chunks; ++c) {
        const int8_t* src = q.data() + c * CHUNK4;
        int8_t* even = q4.data() + c * CHUNK4;
        for (int64_t j = 0; j < 64; ++j) {
          even[j] = src[2 * j];
          even[64 + j] = src[2 * j + 1];
        }
        for (int64_t k = 0; k < 16; ++k) {  // lane k: inputs 8k..8k+7 of the chunk, group k / 4
          int32_t sum = 0;
          for (int64_t i = 8 * k; i < 8 * k + 8; ++i) sum += src[i];
          lane_d[c * 16 + k] = d[4 * c + k / 4];
          lane_c[c * 16 + k] = -8 * sum;
        }
      }
    } else if (kind == Kind::I8) {
      const int64_t chunks = padded / CHUNK;
      lane_d.assign(chunks * 16, 0.f);
      lane_c.assign(chunks * 16, 0);
      for (int64_t c = 0; c < chunks; ++c) {
        for (int64_t k = 0; k < 16; ++k) {  // lane k: inputs 4k..4k+3 of the chunk, block k / 8
          const int8_t* l = q.data() + c * CHUNK + 4 * k;
          lane_d[c * 16 + k] = d[2 * c + k / 8];
          lane_c[c * 16 + k] = -128 * (l[0] + l[1] + l[2] + l[3]);
        }
      }
    }
#else
    (void)kind;
#endif
  }
};

// Reference loops, the same integer sums in plain C++ (the fallback without VNNI; tests compare).
inline float dot_q8_scalar(const int8_t* w, const QuantizedVector& v) {
  float total = 0.f;
  for (int64_t b = 0; b * BLOCK < v.n; ++b) {
    int32_t acc = 0;
    for (int64_t i = b * BLOCK; i < std::min(v.n, (b + 1) * BLOCK); ++i) acc += w[i] * v.q[i];
    total += v.d[b] * static_cast<float>(acc);
  }
  return total;
}

// One group of 32 packed int4 weights (16 bytes) times block b of v, with the group's scale.
inline float group_q4_scalar(const uint8_t* w, float s, const QuantizedVector& v, int64_t b) {
  const int8_t* q = v.q.data() + b * BLOCK;
  int32_t acc = 0;
  for (int64_t j = 0; j < BLOCK / 2; ++j) acc += ((w[j] & 0x0F) - 8) * q[2 * j] + ((w[j] >> 4) - 8) * q[2 * j + 1];
  return s * v.d[b] * static_cast<float>(acc);
}

inline float dot_q4_scalar(const uint8_t* w, const float* s, const QuantizedVector& v) {
  float total = 0.f;
  for (int64_t b = 0; b * BLOCK < v.n; ++b) total += group_q4_scalar(w + b * BLOCK / 2, s[b], v, b);
  return total;
}

#ifdef TINYLM_VNNI
inline float dot_q8_vnni(const int8_t* w, const QuantizedVector& v) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int8_t* q = v.q.data();
  const float* ld = v.lane_d.data();
  const int32_t* lc = v.lane_c.data();
  __m512 t0 = _mm512_setzero_ps(), t1 = t0;
  int64_t i = 0;
  for (; i + 2 * CHUNK <= v.n; i += 2 * CHUNK, ld += 32, lc += 32) {  // two chunks: two chains
    const __m512i w0 = _mm512_xor_si512(_mm512_loadu_si512(w + i), flip);
    const __m512i w1 = _mm512_xor_si512(_mm512_loadu_si512(w + i + CHUNK), flip);
    const __m512i a0 = _mm512_dpbusd_epi32(_mm512_loadu_si512(lc), w0, _mm512_loadu_si512(q + i));
    const __m512i a1 = _mm512_dpbusd_epi32(_mm512_loadu_si512(lc + 16), w1, _mm512_loadu_si512(q + i + CHUNK));
    t0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_loadu_ps(ld), t0);
    t1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1), _mm512_loadu_ps(ld + 16), t1);
  }
  for (; i < v.n; i += CHUNK, ld += 16, lc += 16) {
    // The row's last bytes: a masked load (the padding bytes become 0x80 against zero activations).
    const __mmask64 m = v.n - i >= CHUNK ? ~0ULL : (1ULL << (v.n - i)) - 1;
    const __m512i w0 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w + i), flip);
    const __m512i a0 = _mm512_dpbusd_epi32(_mm512_loadu_si512(lc), w0, _mm512_loadu_si512(q + i));
    t0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_loadu_ps(ld), t0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(t0, t1));
}

inline float dot_q4_vnni(const uint8_t* w, const float* s, const QuantizedVector& v) {
  // Lane k belongs to the chunk's group k / 4: this spreads the chunk's 4 group scales over lanes.
  const __m512i pick = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const int8_t* q = v.q4.data();
  const float* ld = v.lane_d.data();
  const int32_t* lc = v.lane_c.data();
  // One chunk of 128 inputs at i. The row's last chunk (`tail`, `rest` of 32, 64 or 96 inputs) loads
  // only its bytes and group scales; the missing ones load as 0 and meet zero activations and lane
  // scales. Whole chunks use plain loads.
  auto chunk = [&](int64_t i, bool tail, int64_t rest, __m512 t) {
    const __m512i packed = tail ? _mm512_maskz_loadu_epi8((1ULL << (rest / 2)) - 1, w + i / 2) : _mm512_loadu_si512(w + i / 2);
    const __m128 four = tail ? _mm_maskz_loadu_ps(static_cast<__mmask8>((1u << (rest / BLOCK)) - 1), s + i / BLOCK)
                             : _mm_loadu_ps(s + i / BLOCK);
    const __m512i low = _mm512_and_si512(packed, nibble);                          // even inputs
    const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);  // odd inputs
    __m512i a = _mm512_dpbusd_epi32(_mm512_loadu_si512(lc + i / 8), low, _mm512_loadu_si512(q + i));
    a = _mm512_dpbusd_epi32(a, high, _mm512_loadu_si512(q + i + 64));
    const __m512 scale = _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(four));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_mul_ps(_mm512_loadu_ps(ld + i / 8), scale), t);
  };
  __m512 t0 = _mm512_setzero_ps(), t1 = t0;  // two chains: each fmadd waits on the previous one
  int64_t i = 0;
  for (; i + 2 * CHUNK4 <= v.n; i += 2 * CHUNK4) {
    t0 = chunk(i, false, 0, t0);
    t1 = chunk(i + CHUNK4, false, 0, t1);
  }
  if (i + CHUNK4 <= v.n) {
    t0 = chunk(i, false, 0, t0);
    i += CHUNK4;
  }
  if (i < v.n) t1 = chunk(i, true, v.n - i, t1);  // int4 rows are whole groups of 32
  return _mm512_reduce_add_ps(_mm512_add_ps(t0, t1));
}

// Row w times R quantized vectors at once (a batch's rows): each 64-byte weight chunk is loaded
// and made unsigned once for all R, then each vector costs a vpdpbusd, a conversion and an FMA
// (R independent chains). At batch 8 the one-vector loop spent about as long per vector as at
// batch 1: it was bound by instructions, not by reading the weights.
template <int R>
inline void dot_q8_vnni_rows(const int8_t* w, const QuantizedVector* v, float* sums) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int64_t n = v[0].n;
  const int8_t* q[R];
  const float* ld[R];
  const int32_t* lc[R];
  __m512 t[R];
  for (int r = 0; r < R; ++r) {
    q[r] = v[r].q.data();
    ld[r] = v[r].lane_d.data();
    lc[r] = v[r].lane_c.data();
    t[r] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < n; i += CHUNK) {
    const __mmask64 m = n - i >= CHUNK ? ~0ULL : (1ULL << (n - i)) - 1;  // as in dot_q8_vnni
    const __m512i wc = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w + i), flip);
    const int64_t lane = i / 4;  // 16 lanes per chunk of 64
    for (int r = 0; r < R; ++r) {
      const __m512i a = _mm512_dpbusd_epi32(_mm512_loadu_si512(lc[r] + lane), wc, _mm512_loadu_si512(q[r] + i));
      t[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_loadu_ps(ld[r] + lane), t[r]);
    }
  }
  for (int r = 0; r < R; ++r) sums[r] = _mm512_reduce_add_ps(t[r]);
}
#endif

// A weight matrix as the step reads it: float rows; int8 rows times a per-row scale; or int4
// rows (symmetric, stored as nibbles q + 8, two per byte, low nibble first) times a scale per
// group of 32 inputs.
struct Matrix {
  torch::Tensor weight;  // (out, in) float32 or int8, or (out, in / 2) uint8, contiguous
  torch::Tensor scale;   // (out,) for int8, (out, in / 32) for int4, float32; undefined for float32
  Kind kind = Kind::F32;
  int64_t out = 0, in = 0;
  // Raw pointers taken once: data_ptr<T>() is an out-of-line call with a dtype check, which per
  // row (tens of thousands a step) cost a measurable part of a step.
  const void* w = nullptr;
  const float* s = nullptr;

  Matrix() = default;
  Matrix(torch::Tensor weights, torch::Tensor scales) : weight(weights.contiguous()), out(weights.size(0)), in(weights.size(1)) {
    if (weight.scalar_type() == torch::kInt8) {
      kind = Kind::I8;
      TORCH_CHECK(scales.defined() && scales.numel() == out && scales.scalar_type() == torch::kFloat,
                  "int8 matrix needs (out,) float scales");
    } else if (weight.scalar_type() == torch::kUInt8) {
      kind = Kind::I4;
      in = 2 * weight.size(1);
      TORCH_CHECK(scales.defined() && scales.dim() == 2 && scales.size(0) == out && scales.size(1) * BLOCK == in &&
                  scales.scalar_type() == torch::kFloat, "int4 matrix needs (out, in / 32) float scales");
    } else {
      TORCH_CHECK(weight.scalar_type() == torch::kFloat, "matrices must be float32, int8 or packed int4");
    }
    w = weight.data_ptr();
    if (kind != Kind::F32) {
      scale = scales.contiguous();
      s = scale.data_ptr<float>();
    }
  }

  // Row o . x: float activations (float and int8 weights), or the quantized vector v (int8 and
  // int4 weights; `vnni` picks the VNNI loop where it was compiled).
  float row_dot(int64_t o, const float* x, const QuantizedVector* v, bool vnni) const {
    switch (kind) {
      case Kind::F32:
        return dot_f32(static_cast<const float*>(w) + o * in, x, in);
      case Kind::I8: {
        const int8_t* row = static_cast<const int8_t*>(w) + o * in;
        if (v == nullptr) return dot_i8(row, x, in) * s[o];
#ifdef TINYLM_VNNI
        if (vnni) return dot_q8_vnni(row, *v) * s[o];
#endif
        return dot_q8_scalar(row, *v) * s[o];
      }
      case Kind::I4: {
        const uint8_t* row = static_cast<const uint8_t*>(w) + o * in / 2;
        const float* group_scales = s + o * (in / BLOCK);
#ifdef TINYLM_VNNI
        if (vnni) return dot_q4_vnni(row, group_scales, *v);
#endif
        return dot_q4_scalar(row, group_scales, *v);
      }
    }
    return 0.f;
  }

  // Row o times `rows` vectors (x: rows x in; v: their quantized forms, or nullptr), into y[r * stride].
  void rows_dot(int64_t o, const float* x, int64_t rows, const QuantizedVector* v, bool vnni, float* y,
                int64_t stride) const {
#ifdef TINYLM_VNNI
    if (kind == Kind::I8 && v != nullptr && vnni && rows > 1) {
      const int8_t* row = static_cast<const int8_t*>(w) + o * in;
      float sums[4];
      for (int64_t r = 0; r < rows; r += 4) {
        const int64_t k = std::min<int64_t>(4, rows - r);
        switch (k) {  // the number of vectors is a template argument: their accumulators stay in registers
          case 4: dot_q8_vnni_rows<4>(row, v + r, sums); break;
          case 3: dot_q8_vnni_rows<3>(row, v + r, sums); break;
          case 2: dot_q8_vnni_rows<2>(row, v + r, sums); break;
          default: dot_q8_vnni_rows<1>(row, v + r, sums); break;
        }
        for (int64_t j = 0; j < k; ++j) y[(r + j) * stride] = sums[j] * s[o];
      }
      return;
    }
#endif
    for (int64_t r = 0; r < rows; ++r) y[r * stride] = row_dot(o, x + r * in, v ? v + r : nullptr, vnni);
  }

  // Row o as floats (the embedding lookup).
  void row(int64_t o, float* y) const {
    if (kind == Kind::I8) {
      const int8_t* q = weight.data_ptr<int8_t>() + o * in;
      const float s = scale.data_ptr<float>()[o];
      for (int64_t i = 0; i < in; ++i) y[i] = static_cast<float>(q[i]) * s;
    } else if (kind == Kind::I4) {
      const uint8_t* q = weight.data_ptr<uint8_t>() + o * in / 2;
      const float* s = scale.data_ptr<float>() + o * (in / BLOCK);
      for (int64_t i = 0; i < in; ++i) y[i] = static_cast<float>(((i % 2) ? q[i / 2] >> 4 : q[i / 2] & 0x0F) - 8) * s[i / BLOCK];
    } else {
      std::memcpy(y, weight.data_ptr<float>() + o * in, in * sizeof(float));
    }
  }
};

// Rows per task: small enough that both threads get a share of the smallest matrix.
constexpr int64_t GRAIN = 16;

// How a step multiplies by integer weights: float activations (int8 only, the weights widened to
// float in registers), or activations quantized per block of 32 with the VNNI loop or the plain one.
struct Products {
  bool quantize = true;
  bool vnni = true;

  // The quantized form of the `rows` vectors x (rows, m.in) for matrices of m's kind into v, or
  // nullptr where m reads floats.
  const QuantizedVector* prepare(const Matrix& m, const float* x, int64_t rows, std::vector<QuantizedVector>& v) const {
    if (m.kind == Kind::F32 || (m.kind == Kind::I8 && !quantize)) return nullptr;
    if (static_cast<int64_t>(v.size()) < rows) v.resize(rows);
    for (int64_t r = 0; r < rows; ++r) v[r].quantize(x + r * m.in, m.in, m.kind);
    return v.data();
  }

  // y (rows, m.out) = x (rows, m.in) @ m.T; each weight row is read for all rows in turn.
  void matvec(const Matrix& m, const float* x, int64_t rows, float* y, std::vector<QuantizedVector>& v) const {
    const QuantizedVector* qv = prepare(m, x, rows, v);
    at::parallel_for(0, m.out, GRAIN, [&](int64_t begin, int64_t end) {
      // One sequence calls the inlined row loop directly: a call per weight row through rows_dot
      // cost batch-1 int8 steps about 15 % (microbenchmark, docs/compression.md).
      if (rows == 1) {
        for (int64_t o = begin; o < end; ++o) y[o] = m.row_dot(o, x, qv, vnni);
      } else {
        for (int64_t o = begin; o < end; ++o) m.rows_dot(o, x, rows, qv, vnni, y + o, m.out);
      }
    });
  }
};

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
             torch::Tensor cos, torch::Tensor sin, int64_t n_head, int64_t n_kv_head, double eps,
             bool quantize_activations, bool vnni)
      : products_{quantize_activations, vnni}, n_head_(n_head), n_kv_head_(n_kv_head), eps_(static_cast<float>(eps)), cos_(cos.contiguous()), sin_(sin.contiguous()),
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
    for (const Layer& L : layers_) TORCH_CHECK(L.gate.kind == L.up.kind, "decode step: gate and up of one kind");
    for (const Matrix* m : all_matrices())
      TORCH_CHECK(m->kind != Kind::I4 || quantize_activations, "decode step: int4 weights need quantized activations");
    TORCH_CHECK(n_head_ * head_dim_ == dim_ && n_head_ % n_kv_head_ == 0, "decode step: head sizes do not add up");
  }

  // Runs `token` at position `slot` (its cache slot), writing its keys and values into
  // slot `slot` of k_cache / v_cache (n_layer, 1, n_kv_head, capacity, head_dim), and returns
  // the next token's logits (1, vocab).
  torch::Tensor step(int64_t token, int64_t slot, torch::Tensor k_cache, torch::Tensor v_cache) {
    return run(&token, 1, nullptr, slot, k_cache, v_cache);
  }

  // The same for a batch's rows: tokens (B,) int64, one per row, all at cache slot `slot` of
  // k_cache / v_cache (n_layer, B, n_kv_head, capacity, head_dim); `pad` (B,) int64, or empty: the
  // leading slots of each row that are padding (the engine's KVCache.pad), hidden from attention
  // and not counted in the row's position, as in the PyTorch model. Returns (B, vocab) logits.
  torch::Tensor step_rows(torch::Tensor tokens, int64_t slot, torch::Tensor k_cache, torch::Tensor v_cache,
                          torch::Tensor pad) {
    TORCH_CHECK(tokens.dim() == 1 && tokens.scalar_type() == torch::kLong, "tokens must be (B,) int64");
    auto t = tokens.contiguous();
    torch::Tensor p;
    if (pad.numel()) {
      p = pad.contiguous();
      TORCH_CHECK(p.scalar_type() == torch::kLong && p.numel() == t.numel(), "pad must be (B,) int64");
    }
    return run(t.data_ptr<int64_t>(), t.numel(), p.defined() ? p.data_ptr<int64_t>() : nullptr, slot, k_cache, v_cache);
  }

 private:
  torch::Tensor run(const int64_t* tokens, int64_t B, const int64_t* pad, int64_t slot, torch::Tensor k_cache,
                    torch::Tensor v_cache) {
    for (int64_t r = 0; r < B; ++r) TORCH_CHECK(tokens[r] >= 0 && tokens[r] < embedding_.out, "token id out of range");
    TORCH_CHECK(k_cache.scalar_type() == torch::kFloat && v_cache.scalar_type() == torch::kFloat &&
                k_cache.sizes() == v_cache.sizes() && k_cache.strides() == v_cache.strides(), "cache must be two float32 buffers alike");
    TORCH_CHECK(k_cache.dim() == 5 && k_cache.size(0) == static_cast<int64_t>(layers_.size()) && k_cache.size(1) == B &&
                k_cache.size(2) == n_kv_head_ && k_cache.size(4) == head_dim_ && k_cache.stride(4) == 1, "cache shape mismatch");
    TORCH_CHECK(slot >= 0 && slot < k_cache.size(3) && slot < cos_.size(0), "no room for this position");
    const int64_t D = head_dim_, H = n_head_, G = n_head_ / n_kv_head_, S = slot + 1, Q = (H + 2 * n_kv_head_) * D;
    const int64_t s_layer = k_cache.stride(0), s_row = k_cache.stride(1), s_head = k_cache.stride(2),
                  s_slot = k_cache.stride(3);
    float* kc = k_cache.data_ptr<float>();
    float* vc = v_cache.data_ptr<float>();
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    TORCH_CHECK(D <= 1024, "head_dim too large");
    x_.resize(B * dim_);
    h_.resize(B * dim_);
    qkv_.resize(B * Q);
    att_.resize(B * dim_);
    ffn_.resize(B * hidden_);
    scores_.resize(B * H * S);
    // Row r's first visible slot and position: padding slots are skipped and not counted (a row
    // that is still all padding sees only its own slot, as the PyTorch model's mask lets it).
    std::vector<int64_t> first(B), position(B);
    for (int64_t r = 0; r < B; ++r) {
      first[r] = pad ? std::min(pad[r], slot) : 0;
      position[r] = pad ? std::max<int64_t>(slot - pad[r], 0) : slot;
    }

    float* x = x_.data();
    float* h = h_.data();
    for (int64_t r = 0; r < B; ++r) embedding_.row(tokens[r], x + r * dim_);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& L = layers_[l];
      for (int64_t r = 0; r < B; ++r) rms_norm(x + r * dim_, L.norm1.data_ptr<float>(), h + r * dim_, dim_, eps_);
      products_.matvec(L.qkv, h, B, qkv_.data(), qv_);
      float* k_layer = kc + l * s_layer;
      float* v_layer = vc + l * s_layer;
      for (int64_t r = 0; r < B; ++r) {
        // RoPE, "rotate half": pairs (i, i + D/2); the sin table's first half is stored negated.
        const float* cos = cos_.data_ptr<float>() + position[r] * D;
        const float* sin = sin_.data_ptr<float>() + position[r] * D;
        float* row = qkv_.data() + r * Q;
        float tmp[1024];
        for (int64_t head = 0; head < H + n_kv_head_; ++head) {
          float* v = row + head * D;
          std::memcpy(tmp, v, D * sizeof(float));
          for (int64_t i = 0; i < D; ++i) v[i] = tmp[i] * cos[i] + tmp[(i + D / 2) % D] * sin[i];
        }
        for (int64_t g = 0; g < n_kv_head_; ++g) {
          std::memcpy(k_layer + r * s_row + g * s_head + slot * s_slot, row + (H + g) * D, D * sizeof(float));
          std::memcpy(v_layer + r * s_row + g * s_head + slot * s_slot, row + (H + n_kv_head_ + g) * D, D * sizeof(float));
        }
      }
      // Attention of each row's query heads over the row's visible filled slots of its key/value head.
      at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
          const int64_t r = task / H, head = task % H, s0 = first[r];
          const float* q = qkv_.data() + r * Q + head * D;
          const float* keys = k_layer + r * s_row + (head / G) * s_head;
          const float* values = v_layer + r * s_row + (head / G) * s_head;
          float* p = scores_.data() + task * S;
          float top = -INFINITY;
          for (int64_t s = s0; s < S; ++s) {
            p[s] = dot_f32(keys + s * s_slot, q, D) * scale;
            top = std::max(top, p[s]);
          }
          float total = 0.f;
          for (int64_t s = s0; s < S; ++s) total += (p[s] = std::exp(p[s] - top));
          float* out = att_.data() + r * dim_ + head * D;
          std::fill(out, out + D, 0.f);
          for (int64_t s = s0; s < S; ++s) {
            const float a = p[s] / total;
            const float* vs = values + s * s_slot;
            for (int64_t i = 0; i < D; ++i) out[i] += a * vs[i];
          }
        }
      });
      products_.matvec(L.proj, att_.data(), B, h, qv_);
      for (int64_t i = 0; i < B * dim_; ++i) x[i] += h[i];
      for (int64_t r = 0; r < B; ++r) rms_norm(x + r * dim_, L.norm2.data_ptr<float>(), h + r * dim_, dim_, eps_);
      // SwiGLU: gate and up read the same h; one pass computes silu(gate) * up per hidden unit.
      const QuantizedVector* hq = products_.prepare(L.gate, h, B, qv_);  // gate and up: the same kind
      at::parallel_for(0, hidden_, GRAIN, [&](int64_t begin, int64_t end) {
        if (B == 1) {  // one sequence: the inlined row loop, as in Products::matvec
          for (int64_t j = begin; j < end; ++j) {
            const float g = L.gate.row_dot(j, h, hq, products_.vnni);
            ffn_[j] = g / (1.f + std::exp(-g)) * L.up.row_dot(j, h, hq, products_.vnni);
          }
          return;
        }
        float g[64], u[64];  // this unit's gate and up for each row
        for (int64_t j = begin; j < end; ++j) {
          for (int64_t r0 = 0; r0 < B; r0 += 64) {
            const int64_t k = std::min<int64_t>(64, B - r0);
            const QuantizedVector* v = hq ? hq + r0 : nullptr;
            L.gate.rows_dot(j, h + r0 * dim_, k, v, products_.vnni, g, 1);
            L.up.rows_dot(j, h + r0 * dim_, k, v, products_.vnni, u, 1);
            for (int64_t r = 0; r < k; ++r) ffn_[(r0 + r) * hidden_ + j] = g[r] / (1.f + std::exp(-g[r])) * u[r];
          }
        }
      });
      products_.matvec(L.down, ffn_.data(), B, att_.data(), qv_);
      for (int64_t i = 0; i < B * dim_; ++i) x[i] += att_[i];
    }
    for (int64_t r = 0; r < B; ++r) rms_norm(x + r * dim_, final_norm_.data_ptr<float>(), h + r * dim_, dim_, eps_);
    auto logits = torch::empty({B, head_.out}, torch::kFloat);
    products_.matvec(head_, h, B, logits.data_ptr<float>(), qv_);
    return logits;
  }

  std::vector<const Matrix*> all_matrices() const {
    std::vector<const Matrix*> out{&head_};
    for (const Layer& L : layers_) out.insert(out.end(), {&L.qkv, &L.proj, &L.gate, &L.up, &L.down});
    return out;
  }

  Products products_;
  std::vector<Layer> layers_;
  Matrix head_, embedding_;
  int64_t n_head_, n_kv_head_, dim_ = 0, head_dim_ = 0, hidden_ = 0;
  float eps_;
  torch::Tensor cos_, sin_, final_norm_;
  std::vector<float> x_, h_, qkv_, att_, ffn_, scores_;
  std::vector<QuantizedVector> qv_;  // one per row
};


// Sets logits[r, t] = -inf wherever bit t % 32 of word t / 32 of bitmask row r is 0: a grammar's
// packed mask (XGrammar's layout, little-endian int32 words) applied to (B, V) float32 logits in
// place. The decoder masks here, right where the step's logits come out, instead of through torch
// calls on the Python side: each of those costs microseconds just after the forward pass.
void apply_bitmask(torch::Tensor logits, torch::Tensor bitmask) {
  TORCH_CHECK(logits.dim() == 2 && logits.scalar_type() == torch::kFloat && logits.stride(1) == 1,
              "logits must be (B, V) float32 with contiguous rows");
  TORCH_CHECK(bitmask.dim() == 2 && bitmask.scalar_type() == torch::kInt && bitmask.stride(1) == 1 &&
              bitmask.size(0) >= logits.size(0) && bitmask.size(1) * 32 >= logits.size(1),
              "bitmask must be (at least B, ceil(V / 32)) int32 with contiguous rows");
  const int64_t B = logits.size(0), V = logits.size(1);
  float* out = logits.data_ptr<float>();
  const int32_t* words = bitmask.data_ptr<int32_t>();
  for (int64_t r = 0; r < B; ++r) {
    float* row = out + r * logits.stride(0);
    const uint32_t* w = reinterpret_cast<const uint32_t*>(words + r * bitmask.stride(0));
    for (int64_t t = 0; t < V; ++t)
      if (!((w[t >> 5] >> (t & 31)) & 1u)) row[t] = -INFINITY;
  }
}

// DecodeStep::step_rows on a thread of its own: `start` hands it a step and returns at once,
// `finish` waits for the logits and applies a grammar's bitmask to them if given one. The caller
// meanwhile does what does not depend on the logits: the decoder computes the grammar's next
// bitmask there (tinylm/generation/continuous.py). The thread never touches Python, so neither
// side waits for the GIL. Waking a sleeping thread costs tens of microseconds on a virtual machine
// (docs/grammar.md), a fifth of a step, so between steps the thread spins, and only after 2 ms
// without work does it sleep; `start` then touches the mutex only when the thread sleeps, and
// `finish` spins too. One thread serves the process (tinylm/transforms/decode_step.py): a new
// thread's first parallel loop costs milliseconds (ATen sets up its thread state), more than a
// short generation.
class StepThread {
 public:
  StepThread() : thread_([this] { run(); }) {}

  ~StepThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_one();
    thread_.join();  // at once: the thread checks stop_ while it spins and while it sleeps
  }

  // tokens (B,) int64 and pad as DecodeStep::step_rows takes them.
  void start(DecodeStep& step, torch::Tensor tokens, int64_t slot, torch::Tensor k_cache, torch::Tensor v_cache,
             torch::Tensor pad) {
    TORCH_CHECK(state_.load() == kIdle, "StepThread: finish() the running step first");
    step_ = &step;
    tokens_ = std::move(tokens);
    slot_ = slot;
    k_ = std::move(k_cache);
    v_ = std::move(v_cache);
    pad_ = std::move(pad);
    threads_ = at::get_num_threads();  // the caller's setting: OpenMP keeps one per thread
    // seq_cst store, then load: either this sees the thread going to sleep, or the thread's check
    // under the mutex sees kQueued (run() stores sleeping_, then loads state_).
    state_.store(kQueued);
    if (sleeping_.load()) {
      { std::lock_guard<std::mutex> lock(mutex_); }
      wake_.notify_one();
    }
  }

  // The logits of the started step; with a non-empty bitmask (rows x words int32), masked by it.
  torch::Tensor finish(torch::Tensor bitmask) {
    TORCH_CHECK(state_.load() != kIdle, "StepThread: no step was started");
    for (int spins = 0; state_.load(std::memory_order_acquire) != kDone; ++spins) pause(spins);
    state_.store(kIdle);  // tokens_, k_ and v_ are let go at the next start, which holds the GIL
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    torch::Tensor logits = std::move(logits_);
    if (bitmask.numel()) apply_bitmask(logits, bitmask);
    return logits;
  }

 private:
  enum : int { kIdle, kQueued, kDone };

  static void pause(int spins) {
#if defined(__x86_64__)
    if (spins < 4096) {
      __builtin_ia32_pause();
      return;
    }
#endif
    std::this_thread::yield();  // after a while (or off x86): let another thread have the core
  }

  void run() {
    using clock = std::chrono::steady_clock;
    for (;;) {
      const auto idle_since = clock::now();
      for (int spins = 0; state_.load(std::memory_order_acquire) != kQueued && !stop_.load() &&
                          clock::now() - idle_since < kSpin; ++spins)
        pause(spins);
      if (state_.load(std::memory_order_acquire) != kQueued) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleeping_.store(true);
        wake_.wait(lock, [this] { return stop_.load() || state_.load() == kQueued; });
        sleeping_.store(false);
      }
      if (stop_.load()) return;  // a queued step is not run: finish() cannot be called any more
      try {
#ifdef _OPENMP
        // OpenMP's own setter, for this thread only: at::set_num_threads would also rebuild
        // ATen's process-wide thread pool.
        if (omp_get_max_threads() != threads_) omp_set_num_threads(threads_);
#endif
        logits_ = step_->step_rows(tokens_, slot_, k_, v_, pad_);
      } catch (...) {
        error_ = std::current_exception();
      }
      state_.store(kDone, std::memory_order_release);
    }
  }

  static constexpr std::chrono::milliseconds kSpin{2};
  DecodeStep* step_ = nullptr;
  std::atomic<int> state_{kIdle};
  std::atomic<bool> sleeping_{false};  // the thread waits on wake_: start must notify it
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{false};  // set by the destructor, which then waits no longer than a step
  int64_t slot_ = 0;
  int threads_ = 1;
  torch::Tensor tokens_, k_, v_, pad_, logits_;
  std::exception_ptr error_;
  std::thread thread_;  // last: it starts running once the members above exist
};

// y = W x for one vector x through the step's own loops (tests compare the paths): weight and
// scale as the step takes them, `quantize` and `vnni` as in Products.
torch::Tensor matvec(torch::Tensor weight, torch::Tensor scale, torch::Tensor x, bool quantize, bool vnni) {
  const Matrix m(weight, scale.numel() ? scale : torch::Tensor());
  auto xc = x.contiguous();
  TORCH_CHECK(xc.scalar_type() == torch::kFloat && xc.numel() == m.in, "x must be (in,) float32");
  TORCH_CHECK(m.kind != Kind::I4 || quantize, "int4 weights need quantized activations");
  auto y = torch::empty({m.out}, torch::kFloat);
  std::vector<QuantizedVector> v;
  Products{quantize, vnni}.matvec(m, xc.data_ptr<float>(), 1, y.data_ptr<float>(), v);
  return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
#ifdef TINYLM_VNNI
  m.attr("vnni") = true;
#else
  m.attr("vnni") = false;
#endif
  m.def("matvec", &matvec);
  m.def("apply_bitmask", &apply_bitmask, pybind11::call_guard<pybind11::gil_scoped_release>());
  pybind11::class_<DecodeStep>(m, "DecodeStep")
      .def(pybind11::init<std::vector<torch::Tensor>, std::vector<torch::Tensor>, std::vector<torch::Tensor>, torch::Tensor,
                          torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, int64_t, int64_t, double, bool, bool>())
      .def("step", &DecodeStep::step, pybind11::call_guard<pybind11::gil_scoped_release>())
      .def("step_rows", &DecodeStep::step_rows, pybind11::call_guard<pybind11::gil_scoped_release>());
  pybind11::class_<StepThread>(m, "StepThread")
      .def(pybind11::init<>())
      .def("start", &StepThread::start)
      .def("finish", &StepThread::finish, pybind11::call_guard<pybind11::gil_scoped_release>());
}
