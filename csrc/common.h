// Argument checks shared by the native ops of opentad (see docs/install.md).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#define OPENTAD_CHECK_CPU(x) \
  TORCH_CHECK((x).device().is_cpu(), #x " must be a CPU tensor, got one on ", (x).device())
#define OPENTAD_CHECK_CUDA(x) \
  TORCH_CHECK((x).device().is_cuda(), #x " must be a CUDA tensor, got one on ", (x).device())
#define OPENTAD_CHECK_DIM(x, n) \
  TORCH_CHECK((x).dim() == (n), #x " must have " #n " dimensions, got shape ", (x).sizes())
#define OPENTAD_CHECK_SAME_DTYPE(x, y)                                            \
  TORCH_CHECK((x).scalar_type() == (y).scalar_type(), #x " and " #y               \
              " must have the same dtype, got ", (x).scalar_type(), " and ", (y).scalar_type())
