// Boundary max pooling on the CPU, forward and backward.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>

#include "../common.h"
#include "boundary_pooling.h"

namespace opentad {
namespace {

void check_inputs(const at::Tensor& input, const at::Tensor& segments) {
  OPENTAD_CHECK_CPU(input);
  OPENTAD_CHECK_CPU(segments);
  OPENTAD_CHECK_DIM(input, 3);
  TORCH_CHECK(segments.dim() == 3 && segments.size(0) == input.size(0) && segments.size(2) == 4,
              "segments must be [B, K, 4] with B = ", input.size(0), ", got ", segments.sizes());
  TORCH_CHECK(input.size(1) % 2 == 0, "input must have an even number of channels, got ", input.size(1));
  TORCH_CHECK(input.size(2) > 0, "input must have a non-empty temporal dimension");
  OPENTAD_CHECK_SAME_DTYPE(input, segments);
}

}  // namespace

at::Tensor boundary_pooling_forward_cpu(const at::Tensor& input_in, const at::Tensor& segments_in) {
  check_inputs(input_in, segments_in);
  const at::Tensor input = input_in.contiguous(), segments = segments_in.contiguous();
  const int64_t batch = input.size(0), channels = input.size(1), length = input.size(2), num = segments.size(1);
  at::Tensor out = at::empty({batch, channels, num}, input.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "boundary_pooling_forward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* seg = segments.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / channels, c = nc % channels;
        const scalar_t* row = in + nc * length;
        for (int64_t k = 0; k < num; ++k) {
          const int64_t off = bound_offset(n, c, k, channels, num);
          o[nc * num + k] = row[window_argmax(row, length, seg[off], seg[off + 1])];
        }
      }
    });
  });
  return out;
}

at::Tensor boundary_pooling_backward_cpu(const at::Tensor& grad_in, const at::Tensor& input_in,
                                         const at::Tensor& segments_in) {
  check_inputs(input_in, segments_in);
  OPENTAD_CHECK_CPU(grad_in);
  TORCH_CHECK(grad_in.dim() == 3 && grad_in.size(0) == input_in.size(0) && grad_in.size(1) == input_in.size(1) &&
                  grad_in.size(2) == segments_in.size(1),
              "grad_output must be [B, C, K], got ", grad_in.sizes());
  OPENTAD_CHECK_SAME_DTYPE(grad_in, input_in);
  const at::Tensor grad = grad_in.contiguous(), input = input_in.contiguous(), segments = segments_in.contiguous();
  const int64_t batch = input.size(0), channels = input.size(1), length = input.size(2), num = segments.size(1);
  at::Tensor grad_input = at::zeros_like(input);
  if (grad.numel() == 0) return grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "boundary_pooling_backward_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* seg = segments.data_ptr<scalar_t>();
    const scalar_t* g = grad.data_ptr<scalar_t>();
    scalar_t* gi = grad_input.data_ptr<scalar_t>();
    // one task per (batch, channel) row: no two tasks write the same element
    at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / channels, c = nc % channels;
        const scalar_t* row = in + nc * length;
        for (int64_t k = 0; k < num; ++k) {
          const int64_t off = bound_offset(n, c, k, channels, num);
          gi[nc * length + window_argmax(row, length, seg[off], seg[off + 1])] += g[nc * num + k];
        }
      }
    });
  });
  return grad_input;
}

}  // namespace opentad
