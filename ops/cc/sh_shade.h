// Functors of TfFaceShShade / TfFaceShShadeGrad: one per device (CPU in
// sh_shade.cc, GPU in sh_shade.cu.cc), called by the one OpKernel<Device, T>
// of each op. No TF types: plain pointers and sizes. Each returns 0, or a CUDA
// error code (GPU).
#ifndef TF_FACE_OPS_CC_SH_SHADE_H_
#define TF_FACE_OPS_CC_SH_SHADE_H_

#include <cstdint>

namespace Eigen {
struct ThreadPoolDevice;
struct GpuDevice;
}  // namespace Eigen

namespace tf_face {
namespace functor {

// out[b, t, c] = albedo[b, t, c] * sum_i sh[b, i, c] H_i(n[b, t] / |n[b, t]|).
template <typename Device, typename T>
struct ShShade;

// Backward: d_albedo, d_normals [B, HW, 3] and d_sh [B, 9, 3]; `scratch` holds
// ScratchSize(B, HW) elements for the d_sh partial sums.
template <typename Device, typename T>
struct ShShadeGrad;

template <typename T>
struct ShShade<Eigen::ThreadPoolDevice, T> {
  int operator()(const Eigen::ThreadPoolDevice& d, int64_t B, int64_t HW, const T* albedo, const T* normals,
                 const T* sh, T* out) const;
};

template <typename T>
struct ShShadeGrad<Eigen::ThreadPoolDevice, T> {
  static int64_t ScratchSize(int64_t, int64_t) { return 0; }
  int operator()(const Eigen::ThreadPoolDevice& d, int64_t B, int64_t HW, const T* grad, const T* albedo,
                 const T* normals, const T* sh, T* d_albedo, T* d_normals, T* d_sh, T* scratch) const;
};

#if GOOGLE_CUDA
template <typename T>
struct ShShade<Eigen::GpuDevice, T> {
  int operator()(const Eigen::GpuDevice& d, int64_t B, int64_t HW, const T* albedo, const T* normals,
                 const T* sh, T* out) const;
};

template <typename T>
struct ShShadeGrad<Eigen::GpuDevice, T> {
  static int64_t ScratchSize(int64_t B, int64_t HW);
  int operator()(const Eigen::GpuDevice& d, int64_t B, int64_t HW, const T* grad, const T* albedo,
                 const T* normals, const T* sh, T* d_albedo, T* d_normals, T* d_sh, T* scratch) const;
};
#endif  // GOOGLE_CUDA

}  // namespace functor
}  // namespace tf_face

#endif  // TF_FACE_OPS_CC_SH_SHADE_H_
