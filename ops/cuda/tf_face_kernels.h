// Launchers of the tf_face CUDA kernels. Plain C++ interface: device pointers,
// sizes, a device int32 flag and the CUDA stream as void*. No TensorFlow types,
// so the standalone harness (ops/cuda_harness) and the ops' GPU functors
// (ops/cc/*.cu.cc) call the same code.
//
// Every launcher only enqueues work on `stream` (no synchronisation) and
// returns 0 or a cudaError_t value. Index checks happen on the device: the
// Laplacian launchers clear *d_flag, an out-of-range CSR entry sets it to a
// nonzero code (3 = col_idx entry, 4 = row_ptr) and, as the last step on the
// stream, a flagged launch fills its whole output with NaN.
//
// Determinism: no float atomics. Reductions are per-block warp-shuffle trees
// over fixed texel/vertex ranges, then an in-order sum of the block partials.
#ifndef TF_FACE_OPS_CUDA_TF_FACE_KERNELS_H_
#define TF_FACE_OPS_CUDA_TF_FACE_KERNELS_H_

#include <cstdint>

namespace tf_face {
namespace cuda {

// Scratch elements (of T) the reductions need.
int64_t ShGradScratch(int64_t B, int64_t HW);
int64_t LaplacianScratch(int64_t B, int64_t V);

template <typename T>
int ShShade(const T* albedo, const T* normals, const T* sh, int64_t B, int64_t HW, T* out, void* stream);

template <typename T>
int ShShadeGrad(const T* grad, const T* albedo, const T* normals, const T* sh, int64_t B, int64_t HW,
                T* d_albedo, T* d_normals, T* d_sh, T* scratch, void* stream);

template <typename T>
int Laplacian(const T* values, const int32_t* row_ptr, const int32_t* col_idx, int64_t B, int64_t V, int64_t C,
              int64_t nnz, T* energy, T* scratch, int32_t* d_flag, void* stream);

template <typename T>
int LaplacianGrad(const T* values, const int32_t* row_ptr, const int32_t* col_idx,
                  const int32_t* t_row_ptr, const int32_t* t_col_idx, const T* grad_energy, int64_t B,
                  int64_t V, int64_t C, int64_t nnz, T* out, int32_t* d_flag, void* stream);

}  // namespace cuda
}  // namespace tf_face

#endif  // TF_FACE_OPS_CUDA_TF_FACE_KERNELS_H_
