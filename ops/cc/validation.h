// Input validation of the tf_face ops, shared by the CPU and GPU kernels.
//
// Shapes are checked for both devices by the same functions (the shapes live on
// the host). Index *values* (the CSR row_ptr / col_idx) are checked on the host
// by ValidateCsrIndices when the tensors are in host memory, i.e. on CPU; on
// GPU the CUDA kernels check each index and, on a bad one, the op's output is
// NaN (see ops/README.md, "Index checks on the GPU").
#ifndef TF_FACE_OPS_CC_VALIDATION_H_
#define TF_FACE_OPS_CC_VALIDATION_H_

#include "absl/status/status.h"
#include "tensorflow/core/framework/tensor.h"

namespace tf_face {

// albedo = normals = [B, H, W, 3] with B > 0, sh = [B, 9, 3]; grad (when not
// null) = albedo's shape.
absl::Status ValidateShShade(const tensorflow::Tensor& albedo, const tensorflow::Tensor& normals,
                                   const tensorflow::Tensor& sh, const tensorflow::Tensor* grad = nullptr);

// values [B, V, C] with B > 0; sets *V.
absl::Status ValidateValues(const tensorflow::Tensor& values, int64_t* num_vertices);

// row_ptr [V + 1] and col_idx [nnz] are vectors; `name` prefixes the message.
absl::Status ValidateCsrShapes(const tensorflow::Tensor& row_ptr, const tensorflow::Tensor& col_idx,
                                     int64_t num_vertices, const char* name);

// Host memory only: row_ptr starts at 0, does not decrease and ends at nnz;
// every col_idx lies in [0, V).
absl::Status ValidateCsrIndices(const tensorflow::Tensor& row_ptr, const tensorflow::Tensor& col_idx,
                                      const char* name);

}  // namespace tf_face

#endif  // TF_FACE_OPS_CC_VALIDATION_H_
