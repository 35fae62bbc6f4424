// Mesh-Laplacian smoothness over a CSR adjacency: the per-vertex maths and the
// CSR transpose. Plain C++ / CUDA, no TensorFlow types.
//
//   E[b] = sum_i sum_{j in N(i)} |x_i - x_j|^2        (N(i) = row i of the CSR)
//   dE/dx_i = 2 sum_{j in N(i)} (x_i - x_j) + 2 sum_{k : i in N(k)} (x_i - x_k)
//
// The second sum of the gradient is a row of the transposed CSR, so the
// gradient is a gather (no scatter-add, no atomics). Indices are assumed valid
// here: the CPU op checks them on the host first, the CUDA kernels check each
// index themselves (ops/cuda/tf_face_kernels.cu.cc).
#ifndef TF_FACE_OPS_KERNELS_LAPLACIAN_MATH_H_
#define TF_FACE_OPS_KERNELS_LAPLACIAN_MATH_H_

#include <cstdint>
#include <vector>

#include "ops/kernels/host_device.h"

namespace tf_face {

// sum_{j in N(i)} |x_i - x_j|^2 for one batch element xb [V, C].
template <typename T>
TFF_HD T LaplacianRowEnergy(const T* xb, int64_t i, int64_t C, const int32_t* row_ptr,
                            const int32_t* col_idx) {
  const T* xi = xb + i * C;
  T row = T(0);
  for (int32_t k = row_ptr[i]; k < row_ptr[i + 1]; ++k) {
    const T* xj = xb + static_cast<int64_t>(col_idx[k]) * C;
    for (int64_t c = 0; c < C; ++c) {
      const T d = xi[c] - xj[c];
      row += d * d;
    }
  }
  return row;
}

// acc[c] += sum_{j in N(i)} (x_i[c] - x_j[c]) for all C channels.
template <typename T>
TFF_HD void LaplacianRowDiffs(const T* xb, int64_t i, int64_t C, const int32_t* row_ptr,
                              const int32_t* col_idx, T* acc) {
  const T* xi = xb + i * C;
  for (int32_t k = row_ptr[i]; k < row_ptr[i + 1]; ++k) {
    const T* xj = xb + static_cast<int64_t>(col_idx[k]) * C;
    for (int64_t c = 0; c < C; ++c) acc[c] += xi[c] - xj[c];
  }
}

// Transpose of a square CSR pattern [V + 1], [nnz] by a stable counting sort:
// the columns of each transposed row come out in ascending order.
inline void CsrTranspose(int64_t V, int64_t nnz, const int32_t* row_ptr, const int32_t* col_idx,
                         int32_t* t_row_ptr, int32_t* t_col_idx) {
  for (int64_t v = 0; v <= V; ++v) t_row_ptr[v] = 0;
  for (int64_t k = 0; k < nnz; ++k) ++t_row_ptr[col_idx[k] + 1];
  for (int64_t v = 0; v < V; ++v) t_row_ptr[v + 1] += t_row_ptr[v];
  std::vector<int32_t> fill(t_row_ptr, t_row_ptr + V);
  for (int64_t i = 0; i < V; ++i)
    for (int32_t k = row_ptr[i]; k < row_ptr[i + 1]; ++k)
      t_col_idx[fill[col_idx[k]]++] = static_cast<int32_t>(i);
}

}  // namespace tf_face

#endif  // TF_FACE_OPS_KERNELS_LAPLACIAN_MATH_H_
