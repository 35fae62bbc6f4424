// GPU functors of TfFaceShShade / TfFaceShShadeGrad (built only with
// -DGOOGLE_CUDA=1): launch the TF-free CUDA kernels (ops/cuda/) on the op's
// stream. Nothing here waits for the device.
#if GOOGLE_CUDA
#define EIGEN_USE_GPU

#include "ops/cc/sh_shade.h"
#include "ops/cuda/tf_face_kernels.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tf_face {
namespace functor {

using GPUDevice = Eigen::GpuDevice;

template <typename T>
int ShShade<GPUDevice, T>::operator()(const GPUDevice& d, int64_t B, int64_t HW, const T* albedo,
                                      const T* normals, const T* sh, T* out) const {
  return cuda::ShShade<T>(albedo, normals, sh, B, HW, out, d.stream());
}

template <typename T>
int64_t ShShadeGrad<GPUDevice, T>::ScratchSize(int64_t B, int64_t HW) {
  return cuda::ShGradScratch(B, HW);
}

template <typename T>
int ShShadeGrad<GPUDevice, T>::operator()(const GPUDevice& d, int64_t B, int64_t HW, const T* grad,
                                          const T* albedo, const T* normals, const T* sh, T* d_albedo,
                                          T* d_normals, T* d_sh, T* scratch) const {
  return cuda::ShShadeGrad<T>(grad, albedo, normals, sh, B, HW, d_albedo, d_normals, d_sh, scratch, d.stream());
}

template struct ShShade<GPUDevice, float>;
template struct ShShade<GPUDevice, double>;
template struct ShShadeGrad<GPUDevice, float>;
template struct ShShadeGrad<GPUDevice, double>;

}  // namespace functor
}  // namespace tf_face

#endif  // GOOGLE_CUDA
