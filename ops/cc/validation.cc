#include "ops/cc/validation.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace tf_face {

namespace {

template <typename... Args>
absl::Status InvalidArgument(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(args...));
}

}  // namespace

using tensorflow::Tensor;

absl::Status ValidateShShade(const Tensor& albedo, const Tensor& normals, const Tensor& sh, const Tensor* grad) {
  if (albedo.dims() != 4 || albedo.dim_size(3) != 3)
    return InvalidArgument("albedo must be [B, H, W, 3], got ", albedo.shape().DebugString());
  if (normals.shape() != albedo.shape())
    return InvalidArgument("normals ", normals.shape().DebugString(), " must match albedo ",
                           albedo.shape().DebugString());
  if (sh.dims() != 3 || sh.dim_size(1) != 9 || sh.dim_size(2) != 3 || sh.dim_size(0) != albedo.dim_size(0))
    return InvalidArgument("sh must be [B, 9, 3] with B = ", albedo.dim_size(0), ", got ",
                           sh.shape().DebugString());
  if (albedo.dim_size(0) == 0) return InvalidArgument("empty batch: B = 0");
  if (grad != nullptr && grad->shape() != albedo.shape())
    return InvalidArgument("grad ", grad->shape().DebugString(), " must match albedo ",
                           albedo.shape().DebugString());
  return absl::OkStatus();
}

absl::Status ValidateValues(const Tensor& values, int64_t* num_vertices) {
  if (values.dims() != 3) return InvalidArgument("values must be [B, V, C], got ", values.shape().DebugString());
  if (values.dim_size(0) == 0) return InvalidArgument("empty batch: values has B = 0");
  *num_vertices = values.dim_size(1);
  return absl::OkStatus();
}

absl::Status ValidateCsrShapes(const Tensor& row_ptr, const Tensor& col_idx, int64_t num_vertices, const char* name) {
  if (row_ptr.dims() != 1 || col_idx.dims() != 1)
    return InvalidArgument(name, ": row_ptr and col_idx must be vectors, got ", row_ptr.shape().DebugString(),
                           " and ", col_idx.shape().DebugString());
  if (row_ptr.dim_size(0) != num_vertices + 1)
    return InvalidArgument(name, ": row_ptr has ", row_ptr.dim_size(0), " entries, expected V+1 = ",
                           num_vertices + 1);
  return absl::OkStatus();
}

absl::Status ValidateCsrIndices(const Tensor& row_ptr, const Tensor& col_idx, const char* name) {
  const int64_t num_vertices = row_ptr.dim_size(0) - 1;
  const int64_t nnz = col_idx.dim_size(0);
  const int32_t* rp = row_ptr.flat<int32_t>().data();
  if (rp[0] != 0 || rp[num_vertices] != nnz)
    return InvalidArgument(name, ": row_ptr must start at 0 and end at len(col_idx) = ", nnz);
  for (int64_t i = 0; i < num_vertices; ++i)
    if (rp[i + 1] < rp[i]) return InvalidArgument(name, ": row_ptr decreases at ", i);
  const int32_t* ci = col_idx.flat<int32_t>().data();
  for (int64_t k = 0; k < nnz; ++k)
    if (ci[k] < 0 || ci[k] >= num_vertices)
      return InvalidArgument(name, ": col_idx[", k, "] = ", ci[k], " outside [0, ", num_vertices, ")");
  return absl::OkStatus();
}

}  // namespace tf_face
