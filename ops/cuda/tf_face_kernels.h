// Launchers of the tf_face CUDA kernels. Plain C++ interface: device pointers,
// sizes, a device int flag and the CUDA stream as void*. No TensorFlow types,
// so the standalone harness (ops/cuda_harness) and the TF GPU kernels
// (ops/cc/tf_face_ops_gpu.cc) call the same code.
//
// Every launcher returns 0 or a cudaError_t value. Index checks happen on the
// device: an out-of-range id makes the vertex contribute zero and sets
// *d_flag to a nonzero code (3 = CSR entry, 4 = CSR row_ptr); ReadFlag copies it to the host (synchronising the stream).
//
// Determinism: no float atomics. Reductions are per-block warp-shuffle trees
// over fixed texel/vertex ranges, then an in-order sum of the block partials.
#ifndef TF_FACE_OPS_CUDA_TF_FACE_KERNELS_H_
#define TF_FACE_OPS_CUDA_TF_FACE_KERNELS_H_

#include <cstdint>

namespace tf_face {
namespace cuda {

typedef long long i64;

int ClearFlag(int* d_flag, void* stream);
int ReadFlag(const int* d_flag, int* h_flag, void* stream);

// Scratch elements (of T) the reductions need.
i64 ShGradScratch(i64 B, i64 HW);
i64 LaplacianScratch(i64 B, i64 V);

template <typename T>
int ShShade(const T* albedo, const T* normals, const T* sh, i64 B, i64 HW, T* out, void* stream);

template <typename T>
int ShShadeGrad(const T* grad, const T* albedo, const T* normals, const T* sh, i64 B, i64 HW,
                T* d_albedo, T* d_normals, T* d_sh, T* scratch, void* stream);

template <typename T>
int Laplacian(const T* values, const int32_t* row_ptr, const int32_t* col_idx, i64 B, i64 V, i64 C,
              i64 nnz, T* energy, T* scratch, int* d_flag, void* stream);

template <typename T>
int LaplacianGrad(const T* values, const int32_t* row_ptr, const int32_t* col_idx,
                  const int32_t* t_row_ptr, const int32_t* t_col_idx, const T* grad_energy, i64 B,
                  i64 V, i64 C, i64 nnz, T* out, int* d_flag, void* stream);

}  // namespace cuda
}  // namespace tf_face

#endif  // TF_FACE_OPS_CUDA_TF_FACE_KERNELS_H_
