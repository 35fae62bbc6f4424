// What every op-kernel translation unit (laplacian.cc, sh_shade.cc) starts with:
// Eigen's device macros (before any Eigen header: ThreadPoolDevice, and
// GpuDevice with -DGOOGLE_CUDA=1), the CPU ParallelFor, the shared validation,
// and the TF names the kernels use. Include it first.
#ifndef TF_FACE_OPS_CC_KERNEL_COMMON_H_
#define TF_FACE_OPS_CC_KERNEL_COMMON_H_

#ifndef EIGEN_USE_THREADS
#define EIGEN_USE_THREADS
#endif
#if GOOGLE_CUDA && !defined(EIGEN_USE_GPU)
#define EIGEN_USE_GPU
#endif

#include "ops/cc/cpu_parallel.h"

#include "ops/cc/validation.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace tf_face {

using CPUDevice = Eigen::ThreadPoolDevice;
using GPUDevice = Eigen::GpuDevice;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

}  // namespace tf_face

#endif  // TF_FACE_OPS_CC_KERNEL_COMMON_H_
