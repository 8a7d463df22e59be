// Matrix-vector products with integer weights for decode steps (a few rows of x).
//
// A decode step reads every weight once per token, so its time is the time to stream the
// weights from memory. These loops read int8 (or packed int4) weights and widen them to float
// in registers: a quarter (an eighth) of the bytes fp32 weights need, and an 11M-parameter
// model's int8 weights fit in a 32 MiB L3 where its fp32 ones do not. Compiled with -O3
// -march=native -ffast-math, so GCC vectorizes the inner loops (the reassociation that
// -ffast-math allows changes float rounding at the 1e-7 level only).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TINYLM_AVX2 1

// GCC vectorizes the plain loops below with one accumulator per dot product: a chain of
// dependent FMAs, 4 cycles each. These helpers let the AVX2 paths keep several chains going.
static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

// 8 int8 weights as floats.
static inline __m256 load_int8x8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

#ifdef __AVX512F__
// 16 int8 weights as floats.
static inline __m512 load_int8x16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
#endif

// 8 nibbles (4 bytes, low nibble first) as floats 0..15: lane k is bits 4k..4k+3.
static inline __m256 load_int4x8(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  const __m256i shifted = _mm256_srlv_epi32(_mm256_set1_epi32(v), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
  return _mm256_cvtepi32_ps(_mm256_and_si256(shifted, _mm256_set1_epi32(0x0F)));
}
#endif

// y = (x @ q.T) * scale: x (rows, in) float, q (out, in) int8, scale (out) float.
torch::Tensor int8_linear(torch::Tensor x, torch::Tensor q, torch::Tensor scale) {
  const int64_t rows = x.size(0), in = x.size(1), out = q.size(0);
  auto y = torch::empty({rows, out}, x.options());
  const float* xp = x.data_ptr<float>();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = scale.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, out, 32, [&](int64_t begin, int64_t end) {
    std::vector<float> row(in);  // one weight row widened once, then read by every x row from L1
    for (int64_t o = begin; o < end; ++o) {
      const int8_t* w = qp + o * in;
#ifdef TINYLM_AVX2
      if (in % 32 == 0) {
        int64_t r = 0;
        for (; r + 4 <= rows; r += 4) {  // four x rows share each widened weight vector
          const float* x0 = xp + r * in;
          __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
          for (int64_t i = 0; i < in; i += 8) {
            const __m256 wv = load_int8x8(w + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + i), wv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + in + i), wv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + 2 * in + i), wv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + 3 * in + i), wv, a3);
          }
          yp[r * out + o] = hsum(a0) * sp[o];
          yp[(r + 1) * out + o] = hsum(a1) * sp[o];
          yp[(r + 2) * out + o] = hsum(a2) * sp[o];
          yp[(r + 3) * out + o] = hsum(a3) * sp[o];
        }
        for (; r < rows; ++r) {  // one x row: four independent chains along the row
          const float* xr = xp + r * in;
#ifdef __AVX512F__
          if (in % 64 == 0) {  // 16 weights per instruction where the CPU has AVX-512
            __m512 b0 = _mm512_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
            for (int64_t i = 0; i < in; i += 64) {
              b0 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + i), load_int8x16(w + i), b0);
              b1 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + i + 16), load_int8x16(w + i + 16), b1);
              b2 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + i + 32), load_int8x16(w + i + 32), b2);
              b3 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + i + 48), load_int8x16(w + i + 48), b3);
            }
            yp[r * out + o] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(b0, b1), _mm512_add_ps(b2, b3))) * sp[o];
            continue;
          }
#endif
          __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
          for (int64_t i = 0; i < in; i += 32) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i), load_int8x8(w + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i + 8), load_int8x8(w + i + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i + 16), load_int8x8(w + i + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + i + 24), load_int8x8(w + i + 24), a3);
          }
          yp[r * out + o] = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) * sp[o];
        }
        continue;
      }
#endif
      if (rows == 1) {
        float acc = 0.f;
        for (int64_t i = 0; i < in; ++i) acc += xp[i] * static_cast<float>(w[i]);
        yp[o] = acc * sp[o];
        continue;
      }
      for (int64_t i = 0; i < in; ++i) row[i] = static_cast<float>(w[i]);
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = xp + r * in;
        float acc = 0.f;
        for (int64_t i = 0; i < in; ++i) acc += xr[i] * row[i];
        yp[r * out + o] = acc * sp[o];
      }
    }
  });
  return y;
}

// y = x @ ((u - zero) * scale).T group by group: x (rows, in) float, packed (out, in/2) uint8
// (low nibble = even input), scale and zero (out, in/group) float.
torch::Tensor int4_linear(torch::Tensor x, torch::Tensor packed, torch::Tensor scale, torch::Tensor zero,
                          int64_t group) {
  const int64_t rows = x.size(0), in = x.size(1), out = packed.size(0), groups = in / group;
  auto y = torch::empty({rows, out}, x.options());
  // sum of x over each group: the zero point's share, sum_i x_i * zero, per group
  auto xsum = x.view({rows, groups, group}).sum(-1).contiguous();
  const float* xp = x.data_ptr<float>();
  const float* xs = xsum.data_ptr<float>();
  const uint8_t* qp = packed.data_ptr<uint8_t>();
  const float* sp = scale.data_ptr<float>();
  const float* zp = zero.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t half = group / 2;
  at::parallel_for(0, out, 32, [&](int64_t begin, int64_t end) {
    std::vector<float> row(in);  // one weight row unpacked once (nibble values), read by every x row
    for (int64_t o = begin; o < end; ++o) {
      const uint8_t* w = qp + o * (in / 2);
#ifdef TINYLM_AVX2
      {  // group sizes are multiples of 32: whole vectors of 8
        const float* so = sp + o * groups;
        const float* zo = zp + o * groups;
        for (int64_t r = 0; r < rows; ++r) {
          const float* xr = xp + r * in;
          const float* xsr = xs + r * groups;
          __m256 t0 = _mm256_setzero_ps(), t1 = t0;
          float shift = 0.f;  // sum over groups of zero * scale * sum(x in group)
          for (int64_t g = 0; g < groups; ++g) {
            const uint8_t* wg = w + g * half;
            const float* xg = xr + g * group;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;
            for (int64_t i = 0; i < group; i += 16) {
              a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xg + i), load_int4x8(wg + i / 2), a0);
              a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xg + i + 8), load_int4x8(wg + i / 2 + 4), a1);
            }
            const __m256 scale_g = _mm256_set1_ps(so[g]);
            t0 = _mm256_fmadd_ps(a0, scale_g, t0);
            t1 = _mm256_fmadd_ps(a1, scale_g, t1);
            shift += zo[g] * so[g] * xsr[g];
          }
          yp[r * out + o] = hsum(_mm256_add_ps(t0, t1)) - shift;
        }
        continue;
      }
#endif
      if (rows > 1) {
        for (int64_t j = 0; j < in / 2; ++j) {
          row[2 * j] = static_cast<float>(w[j] & 0x0F);
          row[2 * j + 1] = static_cast<float>(w[j] >> 4);
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = xp + r * in;
        float total = 0.f;
        for (int64_t g = 0; g < groups; ++g) {
          const uint8_t* wg = w + g * half;
          const float* xg = xr + g * group;
          float acc = 0.f;
          if (rows == 1) {
            for (int64_t j = 0; j < half; ++j) {
              acc += xg[2 * j] * static_cast<float>(wg[j] & 0x0F) + xg[2 * j + 1] * static_cast<float>(wg[j] >> 4);
            }
          } else {
            const float* rg = row.data() + g * group;
            for (int64_t i = 0; i < group; ++i) acc += xg[i] * rg[i];
          }
          total += (acc - zp[o * groups + g] * xs[r * groups + g]) * sp[o * groups + g];
        }
        yp[r * out + o] = total;
      }
    }
  });
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("int8_linear", &int8_linear);
  m.def("int4_linear", &int4_linear);
}
