// Functors of TfFaceLaplacianSmoothness / TfFaceLaplacianSmoothnessGrad: one
// per device (CPU in laplacian.cc, GPU in laplacian.cu.cc), called by the one
// OpKernel<Device, T> of each op. No TF types. Each returns 0, or a CUDA error
// code (GPU).
//
// `flag` is one int32 of device memory. The CPU functors ignore it (the CPU op
// has checked every index on the host). The GPU functors check each index in
// the kernel and raise the flag on a bad one; a last kernel on the same stream
// then fills the output with NaN. Nothing is read back, nothing waits.
#ifndef TF_FACE_OPS_CC_LAPLACIAN_H_
#define TF_FACE_OPS_CC_LAPLACIAN_H_

#include <cstdint>

namespace Eigen {
struct ThreadPoolDevice;
struct GpuDevice;
}  // namespace Eigen

namespace tf_face {
namespace functor {

// energy[b] = sum_i sum_{j in N(i)} |x[b, i] - x[b, j]|^2, x [B, V, C], CSR
// (row_ptr [V + 1], col_idx [nnz]); `scratch` holds ScratchSize(B, V) elements.
template <typename Device, typename T>
struct LaplacianSmoothness;

// out[b, i] = 2 g[b] (sum_{j in N(i)} (x_i - x_j) + sum_{k in N^T(i)} (x_i - x_k)),
// with N^T the transposed CSR (t_row_ptr, t_col_idx).
template <typename Device, typename T>
struct LaplacianSmoothnessGrad;

#define TFF_LAPLACIAN_FUNCTORS(Device)                                                                   \
  template <typename T>                                                                                 \
  struct LaplacianSmoothness<Device, T> {                                                               \
    static int64_t ScratchSize(int64_t B, int64_t V);                                                   \
    int operator()(const Device& d, int64_t B, int64_t V, int64_t C, int64_t nnz, const T* values,      \
                   const int32_t* row_ptr, const int32_t* col_idx, T* scratch, int32_t* flag,           \
                   T* energy) const;                                                                    \
  };                                                                                                    \
  template <typename T>                                                                                 \
  struct LaplacianSmoothnessGrad<Device, T> {                                                           \
    int operator()(const Device& d, int64_t B, int64_t V, int64_t C, int64_t nnz, const T* values,      \
                   const int32_t* row_ptr, const int32_t* col_idx, const int32_t* t_row_ptr,            \
                   const int32_t* t_col_idx, const T* grad_energy, int32_t* flag, T* out) const;        \
  };

TFF_LAPLACIAN_FUNCTORS(Eigen::ThreadPoolDevice)
#if GOOGLE_CUDA
TFF_LAPLACIAN_FUNCTORS(Eigen::GpuDevice)
#endif
#undef TFF_LAPLACIAN_FUNCTORS

}  // namespace functor
}  // namespace tf_face

#endif  // TF_FACE_OPS_CC_LAPLACIAN_H_
