// 1D RoI align on the CPU (float32 / float64), forward and backward.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include "../common.h"
#include "align1d.h"

namespace opentad {
namespace {

void check_rois(const at::Tensor& rois, const at::Tensor& like) {
  OPENTAD_CHECK_CPU(rois);
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 3, "rois must be [N, 3] (batch index, start, end), got ",
              rois.sizes());
  OPENTAD_CHECK_SAME_DTYPE(rois, like);
}

template <typename T>
void forward_kernel(const T* in, const T* rois, T* out, int64_t num_rois, int64_t channels, int64_t length,
                    int64_t pooled, int64_t ratio) {
  at::parallel_for(0, num_rois * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / channels, c = nc % channels;
      const RoiBins<T> r = roi_bins(rois + 3 * n, pooled, ratio);
      const T* row = in + (r.batch * channels + c) * length;
      for (int64_t pt = 0; pt < pooled; ++pt) {
        T acc = 0;
        for (int64_t it = 0; it < r.grid; ++it) {
          int64_t lo, hi;
          T w_lo, w_hi;
          if (interpolation(sample_position(r, pt, it), length, lo, hi, w_lo, w_hi)) {
            acc += w_lo * row[lo] + w_hi * row[hi];
          }
        }
        out[nc * pooled + pt] = acc / static_cast<T>(r.grid);
      }
    }
  });
}

// One task per channel, rois in order: no two tasks write the same element.
template <typename T>
void backward_kernel(const T* grad, const T* rois, T* grad_in, int64_t num_rois, int64_t channels,
                     int64_t length, int64_t pooled, int64_t ratio) {
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      for (int64_t n = 0; n < num_rois; ++n) {
        const RoiBins<T> r = roi_bins(rois + 3 * n, pooled, ratio);
        T* row = grad_in + (r.batch * channels + c) * length;
        const T count = static_cast<T>(r.grid);
        for (int64_t pt = 0; pt < pooled; ++pt) {
          const T g = grad[(n * channels + c) * pooled + pt];
          for (int64_t it = 0; it < r.grid; ++it) {
            int64_t lo, hi;
            T w_lo, w_hi;
            if (interpolation(sample_position(r, pt, it), length, lo, hi, w_lo, w_hi)) {
              row[lo] += g * w_lo / count;
              row[hi] += g * w_hi / count;
            }
          }
        }
      }
    }
  });
}

template <typename T>
void check_batch_indices(const T* rois, int64_t num_rois, int64_t batch_size) {
  for (int64_t n = 0; n < num_rois; ++n) {
    const int64_t b = static_cast<int64_t>(rois[3 * n]);
    TORCH_CHECK(b >= 0 && b < batch_size, "rois[", n, ", 0] = ", b, " is not a batch index in [0, ", batch_size, ")");
  }
}

}  // namespace

at::Tensor align1d_forward_cpu(const at::Tensor& input_in, const at::Tensor& rois_in, int64_t pooled_size,
                               int64_t sampling_ratio) {
  OPENTAD_CHECK_CPU(input_in);
  OPENTAD_CHECK_DIM(input_in, 3);
  check_rois(rois_in, input_in);
  TORCH_CHECK(pooled_size > 0, "pooled_size must be positive, got ", pooled_size);
  TORCH_CHECK(input_in.size(2) > 0, "input must have a non-empty temporal dimension");
  const at::Tensor input = input_in.contiguous(), rois = rois_in.contiguous();
  const int64_t num_rois = rois.size(0), channels = input.size(1), length = input.size(2);
  at::Tensor out = at::empty({num_rois, channels, pooled_size}, input.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "align1d_forward_cpu", [&] {
    check_batch_indices(rois.data_ptr<scalar_t>(), num_rois, input.size(0));
    forward_kernel<scalar_t>(input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                             num_rois, channels, length, pooled_size, sampling_ratio);
  });
  return out;
}

at::Tensor align1d_backward_cpu(const at::Tensor& grad_in, const at::Tensor& rois_in, int64_t pooled_size,
                                int64_t batch_size, int64_t channels, int64_t length, int64_t sampling_ratio) {
  OPENTAD_CHECK_CPU(grad_in);
  check_rois(rois_in, grad_in);
  TORCH_CHECK(grad_in.dim() == 3 && grad_in.size(0) == rois_in.size(0) && grad_in.size(1) == channels &&
                  grad_in.size(2) == pooled_size,
              "grad_output must be [N, C, pooled_size] = [", rois_in.size(0), ", ", channels, ", ", pooled_size,
              "], got ", grad_in.sizes());
  const at::Tensor grad = grad_in.contiguous(), rois = rois_in.contiguous();
  at::Tensor grad_input = at::zeros({batch_size, channels, length}, grad.options());
  if (grad.numel() == 0) return grad_input;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "align1d_backward_cpu", [&] {
    check_batch_indices(rois.data_ptr<scalar_t>(), rois.size(0), batch_size);
    backward_kernel<scalar_t>(grad.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
                              grad_input.data_ptr<scalar_t>(), rois.size(0), channels, length, pooled_size,
                              sampling_ratio);
  });
  return grad_input;
}

}  // namespace opentad
