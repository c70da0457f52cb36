// Winograd F(4x4, 3x3) convolution on the CPU, channels-last fp32: `ldmkit::winograd_conv3x3`.
//
// The same arithmetic as ldmkit/nn/winograd.py (Lavin and Gray, CVPR 2016), as one operator:
// the input transform (B^T d B, with the zero padding read in place), 36 matrix products
// (at::bmm), and the output transform (A^T m A) with the bias added. Every inner loop runs over
// channels, which channels-last keeps contiguous, so the compiler vectorises it.
// Built on first use by ldmkit/nn/native.py.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace {

// B^T along one axis: six input rows (n channels each) to six transform-domain rows.
inline void input_rows(const float* __restrict__ d0, const float* __restrict__ d1,
                       const float* __restrict__ d2, const float* __restrict__ d3,
                       const float* __restrict__ d4, const float* __restrict__ d5,
                       float* __restrict__ out, int64_t out_stride, int64_t n) {
  float* __restrict__ o0 = out;
  float* __restrict__ o1 = out + out_stride;
  float* __restrict__ o2 = out + 2 * out_stride;
  float* __restrict__ o3 = out + 3 * out_stride;
  float* __restrict__ o4 = out + 4 * out_stride;
  float* __restrict__ o5 = out + 5 * out_stride;
  for (int64_t c = 0; c < n; ++c) {
    const float a0 = d0[c], a1 = d1[c], a2 = d2[c], a3 = d3[c], a4 = d4[c], a5 = d5[c];
    o0[c] = 4.f * a0 - 5.f * a2 + a4;
    o1[c] = -4.f * a1 - 4.f * a2 + a3 + a4;
    o2[c] = 4.f * a1 - 4.f * a2 - a3 + a4;
    o3[c] = -2.f * a1 - a2 + 2.f * a3 + a4;
    o4[c] = 2.f * a1 - a2 - 2.f * a3 + a4;
    o5[c] = 4.f * a1 - 5.f * a3 + a5;
  }
}

// A^T along one axis: six transform-domain rows to four output rows, each written to its own
// pointer plus `add` (the bias, or zeros).
inline void output_rows(const float* __restrict__ m0, const float* __restrict__ m1,
                        const float* __restrict__ m2, const float* __restrict__ m3,
                        const float* __restrict__ m4, const float* __restrict__ m5,
                        const float* __restrict__ add, float* __restrict__ o0,
                        float* __restrict__ o1, float* __restrict__ o2, float* __restrict__ o3,
                        int64_t n) {
  for (int64_t c = 0; c < n; ++c) {
    const float a0 = m0[c], a1 = m1[c], a2 = m2[c], a3 = m3[c], a4 = m4[c], a5 = m5[c];
    const float b = add[c];
    o0[c] = a0 + a1 + a2 + a3 + a4 + b;
    o1[c] = a1 - a2 + 2.f * a3 - 2.f * a4 + b;
    o2[c] = a1 + a2 + 4.f * a3 + 4.f * a4 + b;
    o3[c] = a1 - a2 + 8.f * a3 - 8.f * a4 + a5 + b;
  }
}

at::Tensor winograd_conv3x3(const at::Tensor& x, const at::Tensor& kernel,
                            const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 4, "winograd_conv3x3: x must be (B, C, H, W), got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat && kernel.scalar_type() == at::kFloat,
              "winograd_conv3x3: fp32 only, got ", x.scalar_type(), " and ",
              kernel.scalar_type());
  TORCH_CHECK(kernel.dim() == 3 && kernel.size(0) == 36 && kernel.size(1) == x.size(1),
              "winograd_conv3x3: kernel must be (36, C_in, C_out) with C_in = ", x.size(1),
              ", got ", kernel.sizes());
  const int64_t batch = x.size(0), cin = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t cout = kernel.size(2);
  const int64_t rows = (height + 3) / 4, cols = (width + 3) / 4, tiles = batch * rows * cols;

  const at::Tensor input = x.contiguous(at::MemoryFormat::ChannelsLast);
  const float* src = input.const_data_ptr<float>();
  at::Tensor bias_row = at::zeros({cout}, x.options());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->numel() == cout, "winograd_conv3x3: bias must have ", cout,
                " elements, got ", bias->numel());
    bias_row.copy_(bias->reshape({cout}));
  }
  const float* add = bias_row.const_data_ptr<float>();

  at::Tensor v = at::empty({36, tiles, cin}, x.options());
  float* vd = v.data_ptr<float>();
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> zeros(cin, 0.f), along_h(36 * cin);
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t b = tile / (rows * cols), ty = tile / cols % rows, tx = tile % cols;
      // Column j of the 6x6 input tile, transformed along h, into along_h[a * 6 + j].
      for (int64_t j = 0; j < 6; ++j) {
        const int64_t w = 4 * tx - 1 + j;
        const float* d[6];
        for (int64_t i = 0; i < 6; ++i) {
          const int64_t h = 4 * ty - 1 + i;
          d[i] = (h >= 0 && h < height && w >= 0 && w < width)
                     ? src + ((b * height + h) * width + w) * cin
                     : zeros.data();
        }
        input_rows(d[0], d[1], d[2], d[3], d[4], d[5], along_h.data() + j * cin, 6 * cin, cin);
      }
      // Each row a, transformed along w, into v[a * 6 + b', tile].
      for (int64_t a = 0; a < 6; ++a) {
        const float* r = along_h.data() + a * 6 * cin;
        input_rows(r, r + cin, r + 2 * cin, r + 3 * cin, r + 4 * cin, r + 5 * cin,
                   vd + (a * 6 * tiles + tile) * cin, tiles * cin, cin);
      }
    }
  });

  const at::Tensor m = at::bmm(v, kernel.contiguous());  // (36, tiles, C_out)
  const float* md = m.const_data_ptr<float>();
  at::Tensor y = at::empty({batch, cout, height, width},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  float* yd = y.data_ptr<float>();
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> zeros(cout, 0.f), along_h(24 * cout), spill(4 * cout);
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t b = tile / (rows * cols), ty = tile / cols % rows, tx = tile % cols;
      // Column b' of the 6x6 product, transformed along h, into along_h[r * 6 + b'].
      for (int64_t j = 0; j < 6; ++j) {
        const float* p[6];
        for (int64_t a = 0; a < 6; ++a) {
          p[a] = md + ((a * 6 + j) * tiles + tile) * cout;
        }
        float* o = along_h.data() + j * cout;
        output_rows(p[0], p[1], p[2], p[3], p[4], p[5], zeros.data(), o, o + 6 * cout,
                    o + 12 * cout, o + 18 * cout, cout);
      }
      // Each output row r, transformed along w, to the output pixels inside the map.
      for (int64_t r = 0; r < 4; ++r) {
        const int64_t h = 4 * ty + r;
        if (h >= height) {
          break;
        }
        float* q[4];
        for (int64_t s = 0; s < 4; ++s) {
          const int64_t w = 4 * tx + s;
          q[s] = w < width ? yd + ((b * height + h) * width + w) * cout : spill.data() + s * cout;
        }
        const float* g = along_h.data() + r * 6 * cout;
        output_rows(g, g + cout, g + 2 * cout, g + 3 * cout, g + 4 * cout, g + 5 * cout, add,
                    q[0], q[1], q[2], q[3], cout);
      }
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY(ldmkit, m) {
  m.def("winograd_conv3x3(Tensor x, Tensor kernel, Tensor? bias) -> Tensor");
}

TORCH_LIBRARY_IMPL(ldmkit, CPU, m) {
  m.impl("winograd_conv3x3", &winograd_conv3x3);
}
