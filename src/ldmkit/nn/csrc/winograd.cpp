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
#include <string>
#include <vector>

namespace {

// Most tiles per block: a block's transforms (36 x block x C floats each way) stay in cache.
constexpr int64_t kMaxBlock = 32;

// B^T along one axis: six input rows (n channels each) to six transform-domain rows. Every row
// is its own pointer: gcc vectorises the loop then, and not with offsets from one pointer.
inline void input_rows(const float* __restrict__ d0, const float* __restrict__ d1,
                       const float* __restrict__ d2, const float* __restrict__ d3,
                       const float* __restrict__ d4, const float* __restrict__ d5,
                       float* __restrict__ o0, float* __restrict__ o1, float* __restrict__ o2,
                       float* __restrict__ o3, float* __restrict__ o4, float* __restrict__ o5,
                       int64_t n) {
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

// Where the tiles lie: (B, H, W, C) channels-last maps cut into rows x cols 4x4 output tiles.
struct Geometry {
  int64_t height, width, rows, cols;
};

// One tile's 6x6 input patch (zeros outside the map) to its 36 transform-domain rows of cin
// channels, row k written at out + k * stride; scratch holds 36 x cin floats.
void tile_in(const float* src, const Geometry& g, int64_t tile, int64_t cin, const float* zeros,
             float* scratch, float* out, int64_t stride) {
  const int64_t b = tile / (g.rows * g.cols), ty = tile / g.cols % g.rows, tx = tile % g.cols;
  // Column j of the patch, transformed along h, into scratch[a * 6 + j].
  for (int64_t j = 0; j < 6; ++j) {
    const int64_t w = 4 * tx - 1 + j;
    const float* d[6];
    for (int64_t i = 0; i < 6; ++i) {
      const int64_t h = 4 * ty - 1 + i;
      d[i] = (h >= 0 && h < g.height && w >= 0 && w < g.width)
                 ? src + ((b * g.height + h) * g.width + w) * cin
                 : zeros;
    }
    float* o = scratch + j * cin;
    input_rows(d[0], d[1], d[2], d[3], d[4], d[5], o, o + 6 * cin, o + 12 * cin, o + 18 * cin,
               o + 24 * cin, o + 30 * cin, cin);
  }
  // Each row a, transformed along w, into rows a * 6 + b'.
  for (int64_t a = 0; a < 6; ++a) {
    const float* r = scratch + a * 6 * cin;
    float* o = out + a * 6 * stride;
    input_rows(r, r + cin, r + 2 * cin, r + 3 * cin, r + 4 * cin, r + 5 * cin, o, o + stride,
               o + 2 * stride, o + 3 * stride, o + 4 * stride, o + 5 * stride, cin);
  }
}

// One tile's 36 product rows (row k at m + k * stride) back to its 4x4 output pixels inside the
// map, plus the bias; scratch holds 24 x cout floats, spill 4 x cout.
void tile_out(const float* m, int64_t stride, const Geometry& g, int64_t tile, int64_t cout,
              const float* zeros, const float* bias, float* scratch, float* spill, float* y) {
  const int64_t b = tile / (g.rows * g.cols), ty = tile / g.cols % g.rows, tx = tile % g.cols;
  // Column b' of the 6x6 product, transformed along h, into scratch[r * 6 + b'].
  for (int64_t j = 0; j < 6; ++j) {
    const float* p[6];
    for (int64_t a = 0; a < 6; ++a) {
      p[a] = m + (a * 6 + j) * stride;
    }
    float* o = scratch + j * cout;
    output_rows(p[0], p[1], p[2], p[3], p[4], p[5], zeros, o, o + 6 * cout, o + 12 * cout,
                o + 18 * cout, cout);
  }
  // Each output row r, transformed along w, to the output pixels inside the map.
  for (int64_t r = 0; r < 4; ++r) {
    const int64_t h = 4 * ty + r;
    if (h >= g.height) {
      break;
    }
    float* q[4];
    for (int64_t s = 0; s < 4; ++s) {
      const int64_t w = 4 * tx + s;
      q[s] = w < g.width ? y + ((b * g.height + h) * g.width + w) * cout : spill + s * cout;
    }
    const float* row = scratch + r * 6 * cout;
    output_rows(row, row + cout, row + 2 * cout, row + 3 * cout, row + 4 * cout, row + 5 * cout,
                bias, q[0], q[1], q[2], q[3], cout);
  }
}

// Error messages are put together with std::to_string and passed to TORCH_CHECK as one string,
// never through its stream formatting: a toolchain that links its own copy of libstdc++ into
// the library (the GPU machine's g++ did, for torch's own extension builder too) leaves that
// copy's stream locale uninitialised, and writing a number to a stream there crashes.
std::string shape(at::IntArrayRef sizes) {
  std::string text = "(";
  for (size_t i = 0; i < sizes.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(sizes[i]);
  }
  return text + ")";
}

at::Tensor winograd_conv3x3(const at::Tensor& x, const at::Tensor& kernel,
                            const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 4, "winograd_conv3x3: x must be (B, C, H, W), got " + shape(x.sizes()));
  TORCH_CHECK(x.scalar_type() == at::kFloat && kernel.scalar_type() == at::kFloat,
              std::string("winograd_conv3x3: fp32 only, got ") + c10::toString(x.scalar_type()) +
                  " and " + c10::toString(kernel.scalar_type()));
  TORCH_CHECK(kernel.dim() == 3 && kernel.size(0) == 36 && kernel.size(1) == x.size(1),
              "winograd_conv3x3: kernel must be (36, C_in, C_out) with C_in = " +
                  std::to_string(x.size(1)) + ", got " + shape(kernel.sizes()));
  const int64_t batch = x.size(0), cin = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t cout = kernel.size(2);
  const Geometry g{height, width, (height + 3) / 4, (width + 3) / 4};
  const int64_t tiles = batch * g.rows * g.cols;

  const at::Tensor input = x.contiguous(at::MemoryFormat::ChannelsLast);
  const float* src = input.const_data_ptr<float>();
  at::Tensor bias_row = at::zeros({cout}, x.options());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->numel() == cout, "winograd_conv3x3: bias must have " +
                                           std::to_string(cout) + " elements, got " +
                                           std::to_string(bias->numel()));
    bias_row.copy_(bias->reshape({cout}));
  }
  const float* add = bias_row.const_data_ptr<float>();
  const at::Tensor u = kernel.contiguous();
  at::Tensor y = at::empty({batch, cout, height, width},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  float* yd = y.data_ptr<float>();
  const int64_t width_max = std::max(cin, cout);
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());

  if (tiles < 2 * threads * kMaxBlock) {
    // Few tiles: transform them all, one multi-threaded product, transform back.
    at::Tensor v = at::empty({36, tiles, cin}, x.options());
    float* vd = v.data_ptr<float>();
    at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> zeros(cin, 0.f), scratch(36 * cin);
      for (int64_t tile = begin; tile < end; ++tile) {
        tile_in(src, g, tile, cin, zeros.data(), scratch.data(), vd + tile * cin, tiles * cin);
      }
    });
    const at::Tensor m = at::bmm(v, u);
    const float* md = m.const_data_ptr<float>();
    at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> zeros(cout, 0.f), scratch(24 * cout), spill(4 * cout);
      for (int64_t tile = begin; tile < end; ++tile) {
        tile_out(md + tile * cout, tiles * cout, g, tile, cout, zeros.data(), add,
                 scratch.data(), spill.data(), yd);
      }
    });
    return y;
  }

  // Many tiles: in blocks. Each thread transforms a block, multiplies it and transforms it
  // back while it is still in its cache, instead of sending 36 x tiles x C floats through
  // memory twice.
  const int64_t blocks = (tiles + kMaxBlock - 1) / kMaxBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    at::Tensor v = at::empty({36, kMaxBlock, cin}, x.options());
    at::Tensor m = at::empty({36, kMaxBlock, cout}, x.options());
    float* vd = v.data_ptr<float>();
    const float* md = m.const_data_ptr<float>();
    std::vector<float> zeros(width_max, 0.f), scratch(36 * width_max), spill(4 * cout);
    for (int64_t block = begin; block < end; ++block) {
      const int64_t first = block * kMaxBlock, count = std::min(kMaxBlock, tiles - first);
      if (count < kMaxBlock) {  // the last block's unused rows: zeros, not stale memory
        v.narrow(1, count, kMaxBlock - count).zero_();
      }
      for (int64_t k = 0; k < count; ++k) {
        tile_in(src, g, first + k, cin, zeros.data(), scratch.data(), vd + k * cin,
                kMaxBlock * cin);
      }
      at::bmm_out(m, v, u);  // single-threaded: this is one thread's share
      for (int64_t k = 0; k < count; ++k) {
        tile_out(md + k * cout, kMaxBlock * cout, g, first + k, cout, zeros.data(), add,
                 scratch.data(), spill.data(), yd);
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
