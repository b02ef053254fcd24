// 1D RoI align on CUDA (float32 / float64), forward and backward.
// One thread per output element; the backward scatters with atomic adds.
#include <ATen/Dispatch.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "../common.h"
#include "align1d.h"

namespace opentad {
namespace {

constexpr int kThreads = 256;

inline unsigned int num_blocks(int64_t n) {
  return static_cast<unsigned int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
}

template <typename T>
__global__ void align1d_forward_kernel(const T* __restrict__ in, const T* __restrict__ rois, T* __restrict__ out,
                                       int64_t total, int64_t channels, int64_t length, int64_t pooled,
                                       int64_t ratio) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t pt = index % pooled;
    const int64_t c = (index / pooled) % channels;
    const int64_t n = index / pooled / channels;
    const RoiBins<T> r = roi_bins(rois + 3 * n, pooled, ratio);
    const T* row = in + (r.batch * channels + c) * length;
    T acc = 0;
    for (int64_t it = 0; it < r.grid; ++it) {
      int64_t lo, hi;
      T w_lo, w_hi;
      if (interpolation(sample_position(r, pt, it), length, lo, hi, w_lo, w_hi)) {
        acc += w_lo * row[lo] + w_hi * row[hi];
      }
    }
    out[index] = acc / static_cast<T>(r.grid);
  }
}

template <typename T>
__global__ void align1d_backward_kernel(const T* __restrict__ grad, const T* __restrict__ rois,
                                        T* __restrict__ grad_in, int64_t total, int64_t channels,
                                        int64_t length, int64_t pooled, int64_t ratio) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t pt = index % pooled;
    const int64_t c = (index / pooled) % channels;
    const int64_t n = index / pooled / channels;
    const RoiBins<T> r = roi_bins(rois + 3 * n, pooled, ratio);
    T* row = grad_in + (r.batch * channels + c) * length;
    const T g = grad[index];
    const T count = static_cast<T>(r.grid);
    for (int64_t it = 0; it < r.grid; ++it) {
      int64_t lo, hi;
      T w_lo, w_hi;
      if (interpolation(sample_position(r, pt, it), length, lo, hi, w_lo, w_hi)) {
        gpuAtomicAdd(row + lo, g * w_lo / count);
        gpuAtomicAdd(row + hi, g * w_hi / count);
      }
    }
  }
}

void check_rois(const at::Tensor& rois, const at::Tensor& like) {
  OPENTAD_CHECK_CUDA(rois);
  TORCH_CHECK(rois.device() == like.device(), "rois must be on ", like.device(), ", got ", rois.device());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 3, "rois must be [N, 3] (batch index, start, end), got ",
              rois.sizes());
  OPENTAD_CHECK_SAME_DTYPE(rois, like);
}

}  // namespace

at::Tensor align1d_forward_cuda(const at::Tensor& input_in, const at::Tensor& rois_in, int64_t pooled_size,
                                int64_t sampling_ratio) {
  OPENTAD_CHECK_CUDA(input_in);
  OPENTAD_CHECK_DIM(input_in, 3);
  check_rois(rois_in, input_in);
  TORCH_CHECK(pooled_size > 0, "pooled_size must be positive, got ", pooled_size);
  TORCH_CHECK(input_in.size(2) > 0, "input must have a non-empty temporal dimension");
  const c10::cuda::CUDAGuard guard(input_in.device());
  const at::Tensor input = input_in.contiguous(), rois = rois_in.contiguous();
  const int64_t channels = input.size(1), length = input.size(2);
  at::Tensor out = at::empty({rois.size(0), channels, pooled_size}, input.options());
  const int64_t total = out.numel();
  if (total == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "align1d_forward_cuda", [&] {
    align1d_forward_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
        input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), total, channels, length,
        pooled_size, sampling_ratio);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor align1d_backward_cuda(const at::Tensor& grad_in, const at::Tensor& rois_in, int64_t pooled_size,
                                 int64_t batch_size, int64_t channels, int64_t length, int64_t sampling_ratio) {
  OPENTAD_CHECK_CUDA(grad_in);
  check_rois(rois_in, grad_in);
  TORCH_CHECK(grad_in.dim() == 3 && grad_in.size(0) == rois_in.size(0) && grad_in.size(1) == channels &&
                  grad_in.size(2) == pooled_size,
              "grad_output must be [N, C, pooled_size] = [", rois_in.size(0), ", ", channels, ", ", pooled_size,
              "], got ", grad_in.sizes());
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const at::Tensor grad = grad_in.contiguous(), rois = rois_in.contiguous();
  at::Tensor grad_input = at::zeros({batch_size, channels, length}, grad.options());
  const int64_t total = grad.numel();
  if (total == 0) return grad_input;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "align1d_backward_cuda", [&] {
    align1d_backward_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
        grad.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), total, channels,
        length, pooled_size, sampling_ratio);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_input;
}

}  // namespace opentad
