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

#include <vector>

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
