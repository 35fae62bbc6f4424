// Op registrations and shape functions of the tf_face custom ops (no kernels:
// those are in sh_shade.cc and laplacian.cc, one OpKernel<Device, T> per op).
//
// Ops (all float/double; index tensors int32; see ops/README.md for the maths):
//   TfFaceShShade              albedo[B,H,W,3], normals[B,H,W,3], sh[B,9,3]
//                              -> image[B,H,W,3]
//   TfFaceShShadeGrad          grad, albedo, normals, sh -> d_albedo,
//                              d_normals, d_sh
//   TfFaceCsrTranspose         row_ptr[V+1], col_idx[nnz] -> transposed CSR
//                              (CPU only; the Laplacian gradient's helper)
//   TfFaceLaplacianSmoothness  values[B,V,C], row_ptr, col_idx -> energy[B]
//   TfFaceLaplacianSmoothnessGrad values, row_ptr, col_idx, t_row_ptr,
//                              t_col_idx, grad_energy[B] -> d_values[B,V,C]

#include "absl/status/status.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tf_face {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

static absl::Status CheckNonEmptyBatch(InferenceContext* c, DimensionHandle b) {
  if (c->ValueKnown(b) && c->Value(b) == 0) {
    return absl::InvalidArgumentError("empty batch: dimension 0 must be > 0");
  }
  return absl::OkStatus();
}

static absl::Status ShShadeShapes(InferenceContext* c, ShapeHandle* img) {
  ShapeHandle albedo, normals, sh;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &albedo));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &normals));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &sh));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(albedo, 3), 3, &unused));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(sh, 1), 9, &unused));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(sh, 2), 3, &unused));
  TF_RETURN_IF_ERROR(c->Merge(albedo, normals, img));
  DimensionHandle b;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(*img, 0), c->Dim(sh, 0), &b));
  TF_RETURN_IF_ERROR(CheckNonEmptyBatch(c, b));
  return absl::OkStatus();
}

REGISTER_OP("TfFaceShShade")
    .Input("albedo: T")
    .Input("normals: T")
    .Input("sh: T")
    .Output("image: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle img;
      TF_RETURN_IF_ERROR(ShShadeShapes(c, &img));
      c->set_output(0, img);
      return absl::OkStatus();
    })
    .Doc("Lambertian 2nd-order SH shading: albedo * sum_b sh_b H_b(n/|n|).");

REGISTER_OP("TfFaceShShadeGrad")
    .Input("grad: T")
    .Input("albedo: T")
    .Input("normals: T")
    .Input("sh: T")
    .Output("grad_albedo: T")
    .Output("grad_normals: T")
    .Output("grad_sh: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(3));
      return absl::OkStatus();
    });

REGISTER_OP("TfFaceCsrTranspose")
    .Input("row_ptr: int32")
    .Input("col_idx: int32")
    .Output("t_row_ptr: int32")
    .Output("t_col_idx: int32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle rp, ci;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &rp));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &ci));
      c->set_output(0, rp);
      c->set_output(1, ci);
      return absl::OkStatus();
    })
    .Doc("Transpose of a square CSR pattern (stable counting sort).");

REGISTER_OP("TfFaceLaplacianSmoothness")
    .Input("values: T")
    .Input("row_ptr: int32")
    .Input("col_idx: int32")
    .Output("energy: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle v, rp, ci;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &v));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &rp));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &ci));
      TF_RETURN_IF_ERROR(CheckNonEmptyBatch(c, c->Dim(v, 0)));
      if (c->ValueKnown(c->Dim(v, 1)) && c->ValueKnown(c->Dim(rp, 0)) &&
          c->Value(c->Dim(rp, 0)) != c->Value(c->Dim(v, 1)) + 1) {
        return absl::InvalidArgumentError("row_ptr must have V+1 entries (V from values)");
      }
      c->set_output(0, c->Vector(c->Dim(v, 0)));
      return absl::OkStatus();
    })
    .Doc("E[b] = sum_i sum_{j in N(i)} |x_i - x_j|^2 over a CSR adjacency.");

REGISTER_OP("TfFaceLaplacianSmoothnessGrad")
    .Input("values: T")
    .Input("row_ptr: int32")
    .Input("col_idx: int32")
    .Input("t_row_ptr: int32")
    .Input("t_col_idx: int32")
    .Input("grad_energy: T")
    .Output("grad_values: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    });

}  // namespace tf_face
