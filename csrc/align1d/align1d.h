// 1D RoI align: average of linearly interpolated samples in each of
// pooled_size bins of a segment. Shared by the CPU and CUDA builds.
//
// rois [N, 3] hold (batch index, start, end) in feature positions; a segment
// shorter than 1 is widened to 1; each bin takes sampling_ratio samples
// (sampling_ratio <= 0: ceil(length / pooled_size)). A sample outside
// [-1, length] contributes 0; one in [-1, 0] reads position 0.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

namespace opentad {

template <typename T>
struct RoiBins {
  int64_t batch;  // batch index of the roi (truncated toward zero)
  T start;        // first position
  T bin;          // bin width
  int64_t grid;   // samples per bin
};

template <typename T>
C10_HOST_DEVICE inline RoiBins<T> roi_bins(const T* roi, int64_t pooled_size, int64_t sampling_ratio) {
  RoiBins<T> r;
  r.batch = static_cast<int64_t>(roi[0]);
  r.start = roi[1];
  T width = roi[2] - roi[1];
  width = width > T(1) ? width : T(1);
  r.bin = width / static_cast<T>(pooled_size);
  r.grid = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(r.bin));
  return r;
}

// Position of sample `it` of bin `pt`.
template <typename T>
C10_HOST_DEVICE inline T sample_position(const RoiBins<T>& r, int64_t pt, int64_t it) {
  return (r.start + static_cast<T>(pt) * r.bin) + static_cast<T>(it + 0.5f) * r.bin / static_cast<T>(r.grid);
}

// Neighbours and weights of position t; false when t lies outside [-1, length].
template <typename T>
C10_HOST_DEVICE inline bool interpolation(T t, int64_t length, int64_t& lo, int64_t& hi, T& w_lo, T& w_hi) {
  if (t < T(-1) || t > static_cast<T>(length)) return false;
  if (t <= T(0)) t = T(0);
  lo = static_cast<int64_t>(t);
  if (lo >= length - 1) {
    lo = hi = length - 1;
    t = static_cast<T>(lo);
  } else {
    hi = lo + 1;
  }
  w_hi = t - static_cast<T>(lo);
  w_lo = T(1) - w_hi;
  return true;
}

at::Tensor align1d_forward_cpu(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_size,
                               int64_t sampling_ratio);
at::Tensor align1d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& rois, int64_t pooled_size,
                                int64_t batch_size, int64_t channels, int64_t length, int64_t sampling_ratio);
at::Tensor align1d_forward_cuda(const at::Tensor& input, const at::Tensor& rois, int64_t pooled_size,
                                int64_t sampling_ratio);
at::Tensor align1d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& rois, int64_t pooled_size,
                                 int64_t batch_size, int64_t channels, int64_t length, int64_t sampling_ratio);

}  // namespace opentad
