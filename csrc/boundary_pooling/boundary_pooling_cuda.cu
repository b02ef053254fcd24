// Boundary max pooling on CUDA, forward and backward (atomic adds).
#include <ATen/Dispatch.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "../common.h"
#include "boundary_pooling.h"

namespace opentad {
namespace {

constexpr int kThreads = 256;

inline unsigned int num_blocks(int64_t n) {
  return static_cast<unsigned int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
}

template <typename T>
__global__ void forward_kernel(const T* __restrict__ in, const T* __restrict__ seg, T* __restrict__ out,
                               int64_t total, int64_t channels, int64_t length, int64_t num) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t k = index % num;
    const int64_t nc = index / num;
    const int64_t off = bound_offset(nc / channels, nc % channels, k, channels, num);
    const T* row = in + nc * length;
    out[index] = row[window_argmax(row, length, seg[off], seg[off + 1])];
  }
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ grad, const T* __restrict__ in, const T* __restrict__ seg,
                                T* __restrict__ grad_in, int64_t total, int64_t channels, int64_t length,
                                int64_t num) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t k = index % num;
    const int64_t nc = index / num;
    const int64_t off = bound_offset(nc / channels, nc % channels, k, channels, num);
    const T* row = in + nc * length;
    gpuAtomicAdd(grad_in + nc * length + window_argmax(row, length, seg[off], seg[off + 1]), grad[index]);
  }
}

void check_inputs(const at::Tensor& input, const at::Tensor& segments) {
  OPENTAD_CHECK_CUDA(input);
  OPENTAD_CHECK_CUDA(segments);
  TORCH_CHECK(input.device() == segments.device(), "input and segments must be on one device, got ",
              input.device(), " and ", segments.device());
  OPENTAD_CHECK_DIM(input, 3);
  TORCH_CHECK(segments.dim() == 3 && segments.size(0) == input.size(0) && segments.size(2) == 4,
              "segments must be [B, K, 4] with B = ", input.size(0), ", got ", segments.sizes());
  TORCH_CHECK(input.size(1) % 2 == 0, "input must have an even number of channels, got ", input.size(1));
  TORCH_CHECK(input.size(2) > 0, "input must have a non-empty temporal dimension");
  OPENTAD_CHECK_SAME_DTYPE(input, segments);
}

}  // namespace

at::Tensor boundary_pooling_forward_cuda(const at::Tensor& input_in, const at::Tensor& segments_in) {
  check_inputs(input_in, segments_in);
  const c10::cuda::CUDAGuard guard(input_in.device());
  const at::Tensor input = input_in.contiguous(), segments = segments_in.contiguous();
  const int64_t channels = input.size(1), length = input.size(2), num = segments.size(1);
  at::Tensor out = at::empty({input.size(0), channels, num}, input.options());
  const int64_t total = out.numel();
  if (total == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "boundary_pooling_forward_cuda",
                                  [&] {
                                    forward_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
                                        input.data_ptr<scalar_t>(), segments.data_ptr<scalar_t>(),
                                        out.data_ptr<scalar_t>(), total, channels, length, num);
                                  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor boundary_pooling_backward_cuda(const at::Tensor& grad_in, const at::Tensor& input_in,
                                          const at::Tensor& segments_in) {
  check_inputs(input_in, segments_in);
  OPENTAD_CHECK_CUDA(grad_in);
  TORCH_CHECK(grad_in.dim() == 3 && grad_in.size(0) == input_in.size(0) && grad_in.size(1) == input_in.size(1) &&
                  grad_in.size(2) == segments_in.size(1),
              "grad_output must be [B, C, K], got ", grad_in.sizes());
  OPENTAD_CHECK_SAME_DTYPE(grad_in, input_in);
  const c10::cuda::CUDAGuard guard(input_in.device());
  const at::Tensor grad = grad_in.contiguous(), input = input_in.contiguous(), segments = segments_in.contiguous();
  at::Tensor grad_input = at::zeros_like(input);
  const int64_t total = grad.numel();
  if (total == 0) return grad_input;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "boundary_pooling_backward_cuda",
                                  [&] {
                                    backward_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
                                        grad.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(),
                                        segments.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), total,
                                        input.size(1), input.size(2), segments.size(1));
                                  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_input;
}

}  // namespace opentad
