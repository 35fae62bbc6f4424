// GPU functors of TfFaceLaplacianSmoothness(Grad) (built only with
// -DGOOGLE_CUDA=1): launch the TF-free CUDA kernels (ops/cuda/) on the op's
// stream. Index errors raise a device flag and turn the output into NaN (see
// laplacian.h); nothing here waits for the device.
#if GOOGLE_CUDA
#define EIGEN_USE_GPU

#include "ops/cc/laplacian.h"
#include "ops/cuda/tf_face_kernels.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tf_face {
namespace functor {

using GPUDevice = Eigen::GpuDevice;

template <typename T>
int64_t LaplacianSmoothness<GPUDevice, T>::ScratchSize(int64_t B, int64_t V) {
  return cuda::LaplacianScratch(B, V);
}

template <typename T>
int LaplacianSmoothness<GPUDevice, T>::operator()(const GPUDevice& d, int64_t B, int64_t V, int64_t C,
                                                  int64_t nnz, const T* values, const int32_t* row_ptr,
                                                  const int32_t* col_idx, T* scratch, int32_t* flag,
                                                  T* energy) const {
  return cuda::Laplacian<T>(values, row_ptr, col_idx, B, V, C, nnz, energy, scratch, flag, d.stream());
}

template <typename T>
int LaplacianSmoothnessGrad<GPUDevice, T>::operator()(const GPUDevice& d, int64_t B, int64_t V, int64_t C,
                                                      int64_t nnz, const T* values, const int32_t* row_ptr,
                                                      const int32_t* col_idx, const int32_t* t_row_ptr,
                                                      const int32_t* t_col_idx, const T* grad_energy,
                                                      int32_t* flag, T* out) const {
  return cuda::LaplacianGrad<T>(values, row_ptr, col_idx, t_row_ptr, t_col_idx, grad_energy, B, V, C, nnz, out,
                                flag, d.stream());
}

template struct LaplacianSmoothness<GPUDevice, float>;
template struct LaplacianSmoothness<GPUDevice, double>;
template struct LaplacianSmoothnessGrad<GPUDevice, float>;
template struct LaplacianSmoothnessGrad<GPUDevice, double>;

}  // namespace functor
}  // namespace tf_face

#endif  // GOOGLE_CUDA
