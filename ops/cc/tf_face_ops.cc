// Op registrations, shape functions and CPU kernels of the tf_face custom ops.
//
// Ops (all float/double; index tensors int32; see ops/README.md for the maths):
//   TfFaceUvInterpolate        attributes[B,V,C], tri_id[H,W], bary[H,W,3],
//                              triangles[T,3], mask[H,W] -> texels[B,H,W,C]
//   TfFaceUvAtlasCsr           tri_id, triangles, mask, num_vertices
//                              -> vertex row_ptr[V+1], entries[nnz]
//                              (entry = texel*3 + corner, sorted by vertex,
//                              then texel: the transpose of the atlas)
//   TfFaceUvInterpolateGrad    grad[B,H,W,C], bary, row_ptr, entries -> [B,V,C]
//   TfFaceShShade              albedo[B,H,W,3], normals[B,H,W,3], sh[B,9,3]
//                              -> image[B,H,W,3]
//   TfFaceShShadeGrad          grad, albedo, normals, sh -> d_albedo,
//                              d_normals, d_sh
//   TfFaceUvRender             vertex_normals[B,V,3], albedo, sh, atlas -> image
//                              (fused uv_interpolate + sh_shade, CPU only)
//   TfFaceUvRenderGrad         -> d_albedo, d_normal_map, d_sh
//   TfFaceCsrTranspose         row_ptr[V+1], col_idx[nnz] -> transposed CSR
//   TfFaceLaplacianSmoothness  values[B,V,C], row_ptr, col_idx -> energy[B]
//   TfFaceLaplacianSmoothnessGrad values, row_ptr, col_idx, t_row_ptr,
//                              t_col_idx, grad_energy[B] -> d_values[B,V,C]
//
// Determinism: no kernel uses atomics. Every reduction (d_sh, energy) is
// computed as partial sums over fixed-size blocks (independent of the thread
// count) that are then added in block order; scatter-adds (UV gradient,
// Laplacian gradient) are gathers over a CSR transpose built by a stable
// counting sort. Results are bitwise reproducible run to run.

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include "ops/cc/sh_chunk.h"
#include "ops/kernels/sh_math.h"

namespace tf_face {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

typedef long long int64;

// ---------------------------------------------------------------------------
// Op registrations and shape functions.

static Status CheckNonEmptyBatch(InferenceContext* c, DimensionHandle b) {
  if (c->ValueKnown(b) && c->Value(b) == 0) {
    return InvalidArgument("empty batch: dimension 0 must be > 0");
  }
  return Status();
}

// Atlas inputs: tri_id [H,W], bary [H,W,3], triangles [T,3], mask [H,W].
static Status AtlasShapes(InferenceContext* c, int first, ShapeHandle* hw) {
  ShapeHandle tri_id, bary, triangles, mask;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first), 2, &tri_id));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 1), 3, &bary));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 2), 2, &triangles));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first + 3), 2, &mask));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(bary, 2), 3, &unused));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(triangles, 1), 3, &unused));
  ShapeHandle bary_hw;
  TF_RETURN_IF_ERROR(c->Subshape(bary, 0, 2, &bary_hw));
  TF_RETURN_IF_ERROR(c->Merge(tri_id, bary_hw, hw));
  TF_RETURN_IF_ERROR(c->Merge(*hw, mask, hw));
  return Status();
}

REGISTER_OP("TfFaceUvInterpolate")
    .Input("attributes: T")
    .Input("tri_id: int32")
    .Input("bary: T")
    .Input("triangles: int32")
    .Input("mask: bool")
    .Output("texels: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle attr, hw, out;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &attr));
      TF_RETURN_IF_ERROR(CheckNonEmptyBatch(c, c->Dim(attr, 0)));
      TF_RETURN_IF_ERROR(AtlasShapes(c, 1, &hw));
      TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(c->Dim(attr, 0)), hw, &out));
      TF_RETURN_IF_ERROR(c->Concatenate(out, c->Vector(c->Dim(attr, 2)), &out));
      c->set_output(0, out);
      return Status();
    })
    .Doc("Per-texel barycentric interpolation of per-vertex attributes.");

REGISTER_OP("TfFaceUvAtlasCsr")
    .Input("tri_id: int32")
    .Input("triangles: int32")
    .Input("mask: bool")
    .Input("num_vertices: int32")
    .Output("row_ptr: int32")
    .Output("entries: int32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle s;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &s));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &s));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &s));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 0, &s));
      c->set_output(0, c->Vector(c->UnknownDim()));
      c->set_output(1, c->Vector(c->UnknownDim()));
      return Status();
    })
    .Doc("Vertex -> (texel*3+corner) CSR of a UV atlas (its transpose).");

REGISTER_OP("TfFaceUvInterpolateGrad")
    .Input("grad: T")
    .Input("bary: T")
    .Input("row_ptr: int32")
    .Input("entries: int32")
    .Output("grad_attributes: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle g, bary, rp, en;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &g));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &bary));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &rp));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &en));
      DimensionHandle v;
      TF_RETURN_IF_ERROR(c->Subtract(c->Dim(rp, 0), 1, &v));
      c->set_output(0, c->MakeShape({c->Dim(g, 0), v, c->Dim(g, 3)}));
      return Status();
    })
    .Doc("Transpose of TfFaceUvInterpolate (scatter-add as a CSR gather).");

static Status ShShadeShapes(InferenceContext* c, ShapeHandle* img) {
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
  return Status();
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
      return Status();
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
      return Status();
    });

REGISTER_OP("TfFaceUvRender")
    .Input("vertex_normals: T")
    .Input("albedo: T")
    .Input("sh: T")
    .Input("tri_id: int32")
    .Input("bary: T")
    .Input("triangles: int32")
    .Input("mask: bool")
    .Output("image: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle vn, albedo, sh, hw, unused_s;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &vn));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &albedo));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &sh));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(vn, 2), 3, &unused));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(albedo, 3), 3, &unused));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(sh, 1), 9, &unused));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(sh, 2), 3, &unused));
      TF_RETURN_IF_ERROR(AtlasShapes(c, 3, &hw));
      DimensionHandle b;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(vn, 0), c->Dim(albedo, 0), &b));
      TF_RETURN_IF_ERROR(c->Merge(b, c->Dim(sh, 0), &b));
      TF_RETURN_IF_ERROR(CheckNonEmptyBatch(c, b));
      ShapeHandle albedo_hw;
      TF_RETURN_IF_ERROR(c->Subshape(albedo, 1, 3, &albedo_hw));
      TF_RETURN_IF_ERROR(c->Merge(albedo_hw, hw, &unused_s));
      c->set_output(0, albedo);
      return Status();
    })
    .Doc("Fused uv_interpolate(vertex_normals) -> sh_shade(albedo, ., sh), zero off the atlas.");

REGISTER_OP("TfFaceUvRenderGrad")
    .Input("grad: T")
    .Input("vertex_normals: T")
    .Input("albedo: T")
    .Input("sh: T")
    .Input("tri_id: int32")
    .Input("bary: T")
    .Input("triangles: int32")
    .Input("mask: bool")
    .Output("grad_albedo: T")
    .Output("grad_normal_map: T")
    .Output("grad_sh: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(2));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(3));
      return Status();
    })
    .Doc("Backward of TfFaceUvRender up to the (un-normalised) normal map.");

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
      return Status();
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
        return InvalidArgument("row_ptr must have V+1 entries (V from values)");
      }
      c->set_output(0, c->Vector(c->Dim(v, 0)));
      return Status();
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
      return Status();
    });

// ---------------------------------------------------------------------------
// Validation helpers shared by the kernels (CPU and GPU).

#define TFF_REQUIRE(ctx, cond, ...) \
  OP_REQUIRES(ctx, (cond), InvalidArgument(__VA_ARGS__))

// Checks the atlas tensors' shapes and index ranges. Returns false (with the
// context's status set) on error. H, W, T are written on success.
bool ValidateAtlas(OpKernelContext* ctx, const Tensor& tri_id,
                   const Tensor* bary, const Tensor& triangles,
                   const Tensor& mask, int64 num_vertices, int64* H, int64* W) {
  auto fail = [ctx](const std::string& msg) {
    ctx->CtxFailure(__FILE__, __LINE__, InvalidArgument(msg));
    return false;
  };
  if (tri_id.dims() != 2) return fail("tri_id must be [H, W], got rank " + std::to_string(tri_id.dims()));
  if (mask.dims() != 2) return fail("mask must be [H, W], got rank " + std::to_string(mask.dims()));
  if (triangles.dims() != 2 || triangles.dim_size(1) != 3)
    return fail("triangles must be [T, 3], got " + triangles.shape().DebugString());
  *H = tri_id.dim_size(0);
  *W = tri_id.dim_size(1);
  if (mask.dim_size(0) != *H || mask.dim_size(1) != *W)
    return fail("mask " + mask.shape().DebugString() + " does not match tri_id " + tri_id.shape().DebugString());
  if (bary != nullptr &&
      (bary->dims() != 3 || bary->dim_size(0) != *H || bary->dim_size(1) != *W || bary->dim_size(2) != 3))
    return fail("bary must be [H, W, 3] matching tri_id, got " + bary->shape().DebugString());
  const int64 T = triangles.dim_size(0);
  const int32_t* tri = triangles.flat<int32_t>().data();
  for (int64 i = 0; i < 3 * T; ++i) {
    if (tri[i] < 0 || tri[i] >= num_vertices)
      return fail("triangles[" + std::to_string(i / 3) + "] has vertex id " + std::to_string(tri[i]) +
                  " outside [0, " + std::to_string(num_vertices) + ")");
  }
  const int32_t* tid = tri_id.flat<int32_t>().data();
  for (int64 i = 0; i < (*H) * (*W); ++i) {
    if (tid[i] < -1 || tid[i] >= T)
      return fail("tri_id at texel " + std::to_string(i) + " is " + std::to_string(tid[i]) +
                  ", outside [-1, " + std::to_string(T) + ")");
  }
  return true;
}

bool ValidateCsr(OpKernelContext* ctx, const Tensor& row_ptr, const Tensor& col_idx,
                 int64 num_vertices, const char* name) {
  auto fail = [ctx, name](const std::string& msg) {
    ctx->CtxFailure(__FILE__, __LINE__, InvalidArgument(std::string(name) + ": " + msg));
    return false;
  };
  if (row_ptr.dims() != 1 || col_idx.dims() != 1) return fail("row_ptr and col_idx must be vectors");
  if (row_ptr.dim_size(0) != num_vertices + 1)
    return fail("row_ptr has " + std::to_string(row_ptr.dim_size(0)) + " entries, expected V+1 = " +
                std::to_string(num_vertices + 1));
  const int32_t* rp = row_ptr.flat<int32_t>().data();
  const int64 nnz = col_idx.dim_size(0);
  if (rp[0] != 0 || rp[num_vertices] != nnz)
    return fail("row_ptr must start at 0 and end at len(col_idx) = " + std::to_string(nnz));
  for (int64 i = 0; i < num_vertices; ++i)
    if (rp[i + 1] < rp[i]) return fail("row_ptr decreases at " + std::to_string(i));
  const int32_t* ci = col_idx.flat<int32_t>().data();
  for (int64 k = 0; k < nnz; ++k)
    if (ci[k] < 0 || ci[k] >= num_vertices)
      return fail("col_idx[" + std::to_string(k) + "] = " + std::to_string(ci[k]) + " outside [0, " +
                  std::to_string(num_vertices) + ")");
  return true;
}

static void ParallelFor(OpKernelContext* ctx, int64 total, int64 cost_per_unit,
                        const std::function<void(int64, int64)>& fn) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, total, cost_per_unit, fn);
}

// Block size of the deterministic reductions (texels or vertices per block).
constexpr int64 kReduceBlock = 2048;

// ---------------------------------------------------------------------------
// UV interpolate.

template <typename T>
class UvInterpolateOp : public OpKernel {
 public:
  explicit UvInterpolateOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& attr = ctx->input(0);
    const Tensor& tri_id = ctx->input(1);
    const Tensor& bary = ctx->input(2);
    const Tensor& triangles = ctx->input(3);
    const Tensor& mask = ctx->input(4);
    TFF_REQUIRE(ctx, attr.dims() == 3, "attributes must be [B, V, C], got ", attr.shape().DebugString());
    const int64 B = attr.dim_size(0), V = attr.dim_size(1), C = attr.dim_size(2);
    TFF_REQUIRE(ctx, B > 0, "empty batch: attributes has B = 0");
    int64 H, W;
    if (!ValidateAtlas(ctx, tri_id, &bary, triangles, mask, V, &H, &W)) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, H, W, C}), &out));
    const T* a = attr.flat<T>().data();
    const T* w = bary.flat<T>().data();
    const int32_t* tid = tri_id.flat<int32_t>().data();
    const int32_t* tri = triangles.flat<int32_t>().data();
    const bool* m = mask.flat<bool>().data();
    T* o = out->flat<T>().data();
    const int64 HW = H * W;
    ParallelFor(ctx, B * HW, 8 * C + 10, [&](int64 begin, int64 end) {
      for (int64 p = begin; p < end;) {
        const int64 b = p / HW;
        const int64 stop = std::min(end, (b + 1) * HW);
        const T* ab = a + b * V * C;
        for (int64 t = p - b * HW; p < stop; ++p, ++t) {
          T* op = o + p * C;
          const int32_t f = tid[t];
          if (!m[t] || f < 0) {
            for (int64 c = 0; c < C; ++c) op[c] = T(0);
            continue;
          }
          const T* a0 = ab + tri[3 * f] * C;
          const T* a1 = ab + tri[3 * f + 1] * C;
          const T* a2 = ab + tri[3 * f + 2] * C;
          const T w0 = w[3 * t], w1 = w[3 * t + 1], w2 = w[3 * t + 2];
          if (C == 3) {
            op[0] = w0 * a0[0] + w1 * a1[0] + w2 * a2[0];
            op[1] = w0 * a0[1] + w1 * a1[1] + w2 * a2[1];
            op[2] = w0 * a0[2] + w1 * a1[2] + w2 * a2[2];
          } else {
            for (int64 c = 0; c < C; ++c) op[c] = w0 * a0[c] + w1 * a1[c] + w2 * a2[c];
          }
        }
      }
    });
  }
};

class UvAtlasCsrOp : public OpKernel {
 public:
  explicit UvAtlasCsrOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& tri_id = ctx->input(0);
    const Tensor& triangles = ctx->input(1);
    const Tensor& mask = ctx->input(2);
    const Tensor& nv = ctx->input(3);
    TFF_REQUIRE(ctx, nv.dims() == 0, "num_vertices must be a scalar");
    const int64 V = nv.scalar<int32_t>()();
    TFF_REQUIRE(ctx, V >= 0, "num_vertices must be >= 0");
    int64 H, W;
    if (!ValidateAtlas(ctx, tri_id, nullptr, triangles, mask, V, &H, &W)) return;
    const int32_t* tid = tri_id.flat<int32_t>().data();
    const int32_t* tri = triangles.flat<int32_t>().data();
    const bool* m = mask.flat<bool>().data();
    const int64 HW = H * W;
    std::vector<int32_t> count(V + 1, 0);
    int64 nnz = 0;
    for (int64 t = 0; t < HW; ++t) {
      if (!m[t] || tid[t] < 0) continue;
      for (int k = 0; k < 3; ++k) ++count[tri[3 * tid[t] + k] + 1];
      nnz += 3;
    }
    Tensor* row_ptr = nullptr;
    Tensor* entries = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({V + 1}), &row_ptr));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({nnz}), &entries));
    int32_t* rp = row_ptr->flat<int32_t>().data();
    int32_t* en = entries->flat<int32_t>().data();
    rp[0] = 0;
    for (int64 v = 0; v < V; ++v) rp[v + 1] = rp[v] + count[v + 1];
    std::vector<int32_t> fill(rp, rp + V);
    for (int64 t = 0; t < HW; ++t) {  // ascending texel order: stable
      if (!m[t] || tid[t] < 0) continue;
      for (int k = 0; k < 3; ++k) en[fill[tri[3 * tid[t] + k]]++] = static_cast<int32_t>(3 * t + k);
    }
  }
};

template <typename T>
class UvInterpolateGradOp : public OpKernel {
 public:
  explicit UvInterpolateGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& bary = ctx->input(1);
    const Tensor& row_ptr = ctx->input(2);
    const Tensor& entries = ctx->input(3);
    TFF_REQUIRE(ctx, grad.dims() == 4, "grad must be [B, H, W, C]");
    TFF_REQUIRE(ctx, bary.dims() == 3 && bary.dim_size(0) == grad.dim_size(1) &&
                         bary.dim_size(1) == grad.dim_size(2) && bary.dim_size(2) == 3,
                "bary must be [H, W, 3] matching grad");
    TFF_REQUIRE(ctx, row_ptr.dims() == 1 && row_ptr.dim_size(0) >= 1, "row_ptr must be a non-empty vector");
    const int64 B = grad.dim_size(0), H = grad.dim_size(1), W = grad.dim_size(2), C = grad.dim_size(3);
    const int64 V = row_ptr.dim_size(0) - 1, HW = H * W;
    TFF_REQUIRE(ctx, B > 0, "empty batch");
    // Entries index texel*3+corner, i.e. they are "columns" in [0, 3HW).
    const int32_t* rp = row_ptr.flat<int32_t>().data();
    const int32_t* en = entries.flat<int32_t>().data();
    TFF_REQUIRE(ctx, entries.dims() == 1 && rp[0] == 0 && rp[V] == entries.dim_size(0),
                "row_ptr must start at 0 and end at len(entries)");
    for (int64 v = 0; v < V; ++v) TFF_REQUIRE(ctx, rp[v + 1] >= rp[v], "row_ptr decreases at ", v);
    for (int64 k = 0; k < entries.dim_size(0); ++k)
      TFF_REQUIRE(ctx, en[k] >= 0 && en[k] < 3 * HW, "entries[", k, "] out of range");
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, V, C}), &out));
    const T* g = grad.flat<T>().data();
    const T* w = bary.flat<T>().data();
    T* o = out->flat<T>().data();
    const int64 avg = V > 0 ? entries.dim_size(0) / V + 1 : 1;
    ParallelFor(ctx, B * V, avg * (4 * C + 4), [&](int64 begin, int64 end) {
      std::vector<T> acc(C);
      for (int64 p = begin; p < end; ++p) {
        const int64 b = p / V, v = p - b * V;
        const T* gb = g + b * HW * C;
        if (C == 3) {
          T s0 = T(0), s1 = T(0), s2 = T(0);
          for (int32_t e = rp[v]; e < rp[v + 1]; ++e) {
            const T wk = w[en[e]];
            const T* gp = gb + static_cast<int64>(en[e] / 3) * 3;
            s0 += wk * gp[0];
            s1 += wk * gp[1];
            s2 += wk * gp[2];
          }
          o[p * 3] = s0;
          o[p * 3 + 1] = s1;
          o[p * 3 + 2] = s2;
          continue;
        }
        for (int64 c = 0; c < C; ++c) acc[c] = T(0);
        for (int32_t e = rp[v]; e < rp[v + 1]; ++e) {
          const T wk = w[en[e]];
          const T* gp = gb + static_cast<int64>(en[e] / 3) * C;
          for (int64 c = 0; c < C; ++c) acc[c] += wk * gp[c];
        }
        for (int64 c = 0; c < C; ++c) o[p * C + c] = acc[c];
      }
    });
  }
};

// ---------------------------------------------------------------------------
// SH shade.

static bool ValidateShade(OpKernelContext* ctx, const Tensor& albedo, const Tensor& normals,
                          const Tensor& sh) {
  auto fail = [ctx](const std::string& msg) {
    ctx->CtxFailure(__FILE__, __LINE__, InvalidArgument(msg));
    return false;
  };
  if (albedo.dims() != 4 || albedo.dim_size(3) != 3)
    return fail("albedo must be [B, H, W, 3], got " + albedo.shape().DebugString());
  if (normals.shape() != albedo.shape())
    return fail("normals " + normals.shape().DebugString() + " must match albedo " + albedo.shape().DebugString());
  if (sh.dims() != 3 || sh.dim_size(1) != 9 || sh.dim_size(2) != 3 || sh.dim_size(0) != albedo.dim_size(0))
    return fail("sh must be [B, 9, 3] with B = " + std::to_string(albedo.dim_size(0)) + ", got " +
                sh.shape().DebugString());
  if (albedo.dim_size(0) == 0) return fail("empty batch: B = 0");
  return true;
}

template <typename T>
class ShShadeOp : public OpKernel {
 public:
  explicit ShShadeOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& albedo = ctx->input(0);
    const Tensor& normals = ctx->input(1);
    const Tensor& sh = ctx->input(2);
    if (!ValidateShade(ctx, albedo, normals, sh)) return;
    const int64 B = albedo.dim_size(0), HW = albedo.dim_size(1) * albedo.dim_size(2);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, albedo.shape(), &out));
    const T* a = albedo.flat<T>().data();
    const T* n = normals.flat<T>().data();
    const T* s = sh.flat<T>().data();
    T* o = out->flat<T>().data();
    ParallelFor(ctx, B * HW, 80, [&](int64 begin, int64 end) {
      for (int64 p = begin; p < end;) {
        const int64 b = p / HW;
        const int64 stop = std::min(end, (b + 1) * HW);
        T sb[27];  // local copy: no aliasing with the output
        for (int j = 0; j < 27; ++j) sb[j] = s[b * 27 + j];
        while (p < stop) {
          const int m = static_cast<int>(std::min<int64>(kShLanes, stop - p));
          ShShadeChunk(m, a + 3 * p, n + 3 * p, nullptr, sb, o + 3 * p);
          p += m;
        }
      }
    });
  }
};

template <typename T>
class ShShadeGradOp : public OpKernel {
 public:
  explicit ShShadeGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& albedo = ctx->input(1);
    const Tensor& normals = ctx->input(2);
    const Tensor& sh = ctx->input(3);
    if (!ValidateShade(ctx, albedo, normals, sh)) return;
    TFF_REQUIRE(ctx, grad.shape() == albedo.shape(), "grad must match albedo");
    const int64 B = albedo.dim_size(0), HW = albedo.dim_size(1) * albedo.dim_size(2);
    Tensor *ga = nullptr, *gn = nullptr, *gs = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, albedo.shape(), &ga));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, normals.shape(), &gn));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, sh.shape(), &gs));
    const T* g = grad.flat<T>().data();
    const T* a = albedo.flat<T>().data();
    const T* n = normals.flat<T>().data();
    const T* s = sh.flat<T>().data();
    T* oa = ga->flat<T>().data();
    T* on = gn->flat<T>().data();
    T* os = gs->flat<T>().data();
    const int64 nblk = (HW + kReduceBlock - 1) / kReduceBlock;
    std::vector<double> partial(B * nblk * 27, 0.0);
    ParallelFor(ctx, B * nblk, kReduceBlock * 150, [&](int64 begin, int64 end) {
      for (int64 q = begin; q < end; ++q) {
        const int64 b = q / nblk, blk = q - b * nblk;
        T sb[27];
        for (int j = 0; j < 27; ++j) sb[j] = s[b * 27 + j];
        double acc[27] = {0.0};
        const int64 t1 = std::min(HW, (blk + 1) * kReduceBlock);
        for (int64 t = blk * kReduceBlock; t < t1; t += kShLanes) {
          const int64 p = b * HW + t;
          const int m = static_cast<int>(std::min<int64>(kShLanes, t1 - t));
          ShGradChunk(m, g + 3 * p, a + 3 * p, n + 3 * p, nullptr, sb, oa + 3 * p, on + 3 * p, acc);
        }
        for (int j = 0; j < 27; ++j) partial[q * 27 + j] = acc[j];
      }
    });
    for (int64 b = 0; b < B; ++b)
      for (int j = 0; j < 27; ++j) {
        double acc = 0.0;
        for (int64 blk = 0; blk < nblk; ++blk) acc += partial[(b * nblk + blk) * 27 + j];
        os[b * 27 + j] = static_cast<T>(acc);
      }
  }
};

// ---------------------------------------------------------------------------
// Fused UV render: interpolate vertex normals + SH shade, per texel.

// Validates all inputs of TfFaceUvRender(Grad) starting at input `first`.
static bool ValidateUvRender(OpKernelContext* ctx, int first, int64* B, int64* V, int64* HW) {
  const Tensor& vn = ctx->input(first);
  const Tensor& albedo = ctx->input(first + 1);
  const Tensor& sh = ctx->input(first + 2);
  auto fail = [ctx](const std::string& msg) {
    ctx->CtxFailure(__FILE__, __LINE__, InvalidArgument(msg));
    return false;
  };
  if (vn.dims() != 3 || vn.dim_size(2) != 3)
    return fail("vertex_normals must be [B, V, 3], got " + vn.shape().DebugString());
  *B = vn.dim_size(0);
  *V = vn.dim_size(1);
  if (*B == 0) return fail("empty batch: vertex_normals has B = 0");
  int64 H, W;
  if (!ValidateAtlas(ctx, ctx->input(first + 3), &ctx->input(first + 4), ctx->input(first + 5),
                     ctx->input(first + 6), *V, &H, &W))
    return false;
  if (albedo.shape() != TensorShape({*B, H, W, 3}))
    return fail("albedo must be [B, H, W, 3] = " + TensorShape({*B, H, W, 3}).DebugString() + ", got " +
                albedo.shape().DebugString());
  if (sh.shape() != TensorShape({*B, 9, 3}))
    return fail("sh must be [B, 9, 3], got " + sh.shape().DebugString());
  *HW = H * W;
  return true;
}

// Interpolated (un-normalised) normal of texel t for batch element b; false
// when the texel is not drawn. `vt` holds the vertex normals vertex-major,
// [V, B, 3], so the three corners of a texel for the whole batch are three
// contiguous runs (the atlas' vertex order need not be cache friendly).
template <typename T>
static inline bool TexelNormal(const T* vt, int64 B, int64 b, const int32_t* tid, const T* w,
                               const int32_t* tri, const bool* m, int64 t, T* n) {
  const int32_t f = tid[t];
  if (!m[t] || f < 0) return false;
  const T* a0 = vt + (static_cast<int64>(tri[3 * f]) * B + b) * 3;
  const T* a1 = vt + (static_cast<int64>(tri[3 * f + 1]) * B + b) * 3;
  const T* a2 = vt + (static_cast<int64>(tri[3 * f + 2]) * B + b) * 3;
  const T w0 = w[3 * t], w1 = w[3 * t + 1], w2 = w[3 * t + 2];
  for (int c = 0; c < 3; ++c) n[c] = w0 * a0[c] + w1 * a1[c] + w2 * a2[c];
  return true;
}

// [B, V, 3] -> [V, B, 3].
template <typename T>
static std::vector<T> VertexMajor(OpKernelContext* ctx, const T* vn, int64 B, int64 V) {
  std::vector<T> vt(B * V * 3);
  ParallelFor(ctx, V, 6 * B, [&](int64 begin, int64 end) {
    for (int64 v = begin; v < end; ++v)
      for (int64 b = 0; b < B; ++b)
        for (int c = 0; c < 3; ++c) vt[(v * B + b) * 3 + c] = vn[(b * V + v) * 3 + c];
  });
  return vt;
}

template <typename T>
class UvRenderOp : public OpKernel {
 public:
  explicit UvRenderOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    int64 B, V, HW;
    if (!ValidateUvRender(ctx, 0, &B, &V, &HW)) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(1).shape(), &out));
    const T* vn = ctx->input(0).flat<T>().data();
    const T* a = ctx->input(1).flat<T>().data();
    const T* s = ctx->input(2).flat<T>().data();
    const int32_t* tid = ctx->input(3).flat<int32_t>().data();
    const T* w = ctx->input(4).flat<T>().data();
    const int32_t* tri = ctx->input(5).flat<int32_t>().data();
    const bool* m = ctx->input(6).flat<bool>().data();
    T* o = out->flat<T>().data();
    // Texel-major, batch-minor: the atlas lookups (tri_id -> triangle -> vertex
    // ids, weights) are done once per texel for the whole batch.
    const std::vector<T> vt = VertexMajor(ctx, vn, B, V);
    const int64 nchunk = (HW + kShLanes - 1) / kShLanes;
    ParallelFor(ctx, nchunk, 100 * B * kShLanes, [&](int64 begin, int64 end) {
      for (int64 ch = begin; ch < end; ++ch) {
        const int64 t0 = ch * kShLanes;
        const int cm = static_cast<int>(std::min<int64>(kShLanes, HW - t0));
        for (int64 b = 0; b < B; ++b) {
          T nb[3 * kShLanes];
          bool valid[kShLanes];
          for (int k = 0; k < cm; ++k) valid[k] = TexelNormal(vt.data(), B, b, tid, w, tri, m, t0 + k, nb + 3 * k);
          const int64 p = b * HW + t0;
          ShShadeChunk(cm, a + 3 * p, nb, valid, s + b * 27, o + 3 * p);
        }
      }
    });
  }
};

template <typename T>
class UvRenderGradOp : public OpKernel {
 public:
  explicit UvRenderGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    int64 B, V, HW;
    if (!ValidateUvRender(ctx, 1, &B, &V, &HW)) return;
    const Tensor& grad = ctx->input(0);
    TFF_REQUIRE(ctx, grad.shape() == ctx->input(2).shape(), "grad must match albedo");
    Tensor *ga = nullptr, *gn = nullptr, *gs = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, grad.shape(), &ga));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, grad.shape(), &gn));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ctx->input(3).shape(), &gs));
    const T* g = grad.flat<T>().data();
    const T* vn = ctx->input(1).flat<T>().data();
    const T* a = ctx->input(2).flat<T>().data();
    const T* s = ctx->input(3).flat<T>().data();
    const int32_t* tid = ctx->input(4).flat<int32_t>().data();
    const T* w = ctx->input(5).flat<T>().data();
    const int32_t* tri = ctx->input(6).flat<int32_t>().data();
    const bool* m = ctx->input(7).flat<bool>().data();
    T* oa = ga->flat<T>().data();
    T* on = gn->flat<T>().data();
    T* os = gs->flat<T>().data();
    const int64 nblk = (HW + kReduceBlock - 1) / kReduceBlock;
    std::vector<double> partial(B * nblk * 27, 0.0);
    // Texel blocks (fixed size, so the reduction order does not depend on the
    // thread count), each block handling the whole batch per texel.
    std::vector<T> sh_local(s, s + B * 27);
    const std::vector<T> vt = VertexMajor(ctx, vn, B, V);
    ParallelFor(ctx, nblk, kReduceBlock * 170 * B, [&](int64 begin, int64 end) {
      std::vector<double> acc(B * 27);
      for (int64 blk = begin; blk < end; ++blk) {
        std::fill(acc.begin(), acc.end(), 0.0);
        const int64 t1 = std::min(HW, (blk + 1) * kReduceBlock);
        for (int64 t0 = blk * kReduceBlock; t0 < t1; t0 += kShLanes) {
          const int cm = static_cast<int>(std::min<int64>(kShLanes, t1 - t0));
          for (int64 b = 0; b < B; ++b) {
            T nb[3 * kShLanes];
            bool valid[kShLanes];
            for (int k = 0; k < cm; ++k) valid[k] = TexelNormal(vt.data(), B, b, tid, w, tri, m, t0 + k, nb + 3 * k);
            const int64 p = b * HW + t0;
            ShGradChunk(cm, g + 3 * p, a + 3 * p, nb, valid, sh_local.data() + b * 27, oa + 3 * p, on + 3 * p,
                        acc.data() + b * 27);
          }
        }
        for (int64 b = 0; b < B; ++b)
          for (int j = 0; j < 27; ++j) partial[(b * nblk + blk) * 27 + j] = acc[b * 27 + j];
      }
    });
    for (int64 b = 0; b < B; ++b)
      for (int j = 0; j < 27; ++j) {
        double sum = 0.0;
        for (int64 blk = 0; blk < nblk; ++blk) sum += partial[(b * nblk + blk) * 27 + j];
        os[b * 27 + j] = static_cast<T>(sum);
      }
  }
};

// ---------------------------------------------------------------------------
// CSR transpose and Laplacian smoothness.

class CsrTransposeOp : public OpKernel {
 public:
  explicit CsrTransposeOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& row_ptr = ctx->input(0);
    const Tensor& col_idx = ctx->input(1);
    TFF_REQUIRE(ctx, row_ptr.dims() == 1 && row_ptr.dim_size(0) >= 1, "row_ptr must be a non-empty vector");
    const int64 V = row_ptr.dim_size(0) - 1;
    if (!ValidateCsr(ctx, row_ptr, col_idx, V, "adjacency")) return;
    const int64 nnz = col_idx.dim_size(0);
    Tensor *trp = nullptr, *tci = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, row_ptr.shape(), &trp));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, col_idx.shape(), &tci));
    const int32_t* rp = row_ptr.flat<int32_t>().data();
    const int32_t* ci = col_idx.flat<int32_t>().data();
    int32_t* orp = trp->flat<int32_t>().data();
    int32_t* oci = tci->flat<int32_t>().data();
    for (int64 v = 0; v <= V; ++v) orp[v] = 0;
    for (int64 k = 0; k < nnz; ++k) ++orp[ci[k] + 1];
    for (int64 v = 0; v < V; ++v) orp[v + 1] += orp[v];
    std::vector<int32_t> fill(orp, orp + V);
    for (int64 i = 0; i < V; ++i)
      for (int32_t k = rp[i]; k < rp[i + 1]; ++k) oci[fill[ci[k]]++] = static_cast<int32_t>(i);
  }
};

template <typename T>
class LaplacianSmoothnessOp : public OpKernel {
 public:
  explicit LaplacianSmoothnessOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(0);
    TFF_REQUIRE(ctx, values.dims() == 3, "values must be [B, V, C], got ", values.shape().DebugString());
    const int64 B = values.dim_size(0), V = values.dim_size(1), C = values.dim_size(2);
    TFF_REQUIRE(ctx, B > 0, "empty batch: values has B = 0");
    if (!ValidateCsr(ctx, ctx->input(1), ctx->input(2), V, "adjacency")) return;
    const int32_t* rp = ctx->input(1).flat<int32_t>().data();
    const int32_t* ci = ctx->input(2).flat<int32_t>().data();
    const T* x = values.flat<T>().data();
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B}), &out));
    const int64 nblk = std::max<int64>(1, (V + kReduceBlock - 1) / kReduceBlock);
    std::vector<double> partial(B * nblk, 0.0);
    const int64 avg = V > 0 ? ctx->input(2).dim_size(0) / V + 1 : 1;
    ParallelFor(ctx, B * nblk, kReduceBlock * avg * (3 * C + 2), [&](int64 begin, int64 end) {
      for (int64 q = begin; q < end; ++q) {
        const int64 b = q / nblk, blk = q - b * nblk;
        const T* xb = x + b * V * C;
        double acc = 0.0;
        const int64 i1 = std::min(V, (blk + 1) * kReduceBlock);
        for (int64 i = blk * kReduceBlock; i < i1; ++i) {
          const T* xi = xb + i * C;
          T row = T(0);
          for (int32_t k = rp[i]; k < rp[i + 1]; ++k) {
            const T* xj = xb + static_cast<int64>(ci[k]) * C;
            for (int64 c = 0; c < C; ++c) {
              const T d = xi[c] - xj[c];
              row += d * d;
            }
          }
          acc += row;
        }
        partial[q] = acc;
      }
    });
    T* o = out->flat<T>().data();
    for (int64 b = 0; b < B; ++b) {
      double acc = 0.0;
      for (int64 blk = 0; blk < nblk; ++blk) acc += partial[b * nblk + blk];
      o[b] = static_cast<T>(acc);
    }
  }
};

template <typename T>
class LaplacianSmoothnessGradOp : public OpKernel {
 public:
  explicit LaplacianSmoothnessGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(0);
    const Tensor& ge = ctx->input(5);
    TFF_REQUIRE(ctx, values.dims() == 3, "values must be [B, V, C]");
    const int64 B = values.dim_size(0), V = values.dim_size(1), C = values.dim_size(2);
    TFF_REQUIRE(ctx, B > 0, "empty batch");
    TFF_REQUIRE(ctx, ge.dims() == 1 && ge.dim_size(0) == B, "grad_energy must be [B]");
    if (!ValidateCsr(ctx, ctx->input(1), ctx->input(2), V, "adjacency")) return;
    if (!ValidateCsr(ctx, ctx->input(3), ctx->input(4), V, "transposed adjacency")) return;
    TFF_REQUIRE(ctx, ctx->input(2).dim_size(0) == ctx->input(4).dim_size(0),
                "transposed adjacency has a different number of entries");
    const int32_t* rp = ctx->input(1).flat<int32_t>().data();
    const int32_t* ci = ctx->input(2).flat<int32_t>().data();
    const int32_t* trp = ctx->input(3).flat<int32_t>().data();
    const int32_t* tci = ctx->input(4).flat<int32_t>().data();
    const T* x = values.flat<T>().data();
    const T* g = ge.flat<T>().data();
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, values.shape(), &out));
    T* o = out->flat<T>().data();
    const int64 avg = V > 0 ? 2 * ctx->input(2).dim_size(0) / V + 1 : 1;
    // dE/dx_i = 2 sum_{j in N(i)} (x_i - x_j) + 2 sum_{k : i in N(k)} (x_i - x_k)
    ParallelFor(ctx, B * V, avg * (3 * C + 2), [&](int64 begin, int64 end) {
      std::vector<T> acc(C);
      for (int64 p = begin; p < end; ++p) {
        const int64 b = p / V, i = p - b * V;
        const T* xb = x + b * V * C;
        const T* xi = xb + i * C;
        for (int64 c = 0; c < C; ++c) acc[c] = T(0);
        for (int32_t k = rp[i]; k < rp[i + 1]; ++k) {
          const T* xj = xb + static_cast<int64>(ci[k]) * C;
          for (int64 c = 0; c < C; ++c) acc[c] += xi[c] - xj[c];
        }
        for (int32_t k = trp[i]; k < trp[i + 1]; ++k) {
          const T* xj = xb + static_cast<int64>(tci[k]) * C;
          for (int64 c = 0; c < C; ++c) acc[c] += xi[c] - xj[c];
        }
        const T scale = T(2) * g[b];
        for (int64 c = 0; c < C; ++c) o[p * C + c] = scale * acc[c];
      }
    });
  }
};

// ---------------------------------------------------------------------------
// Kernel registrations (CPU). GPU registrations live in tf_face_ops_gpu.cc.

#define REGISTER_CPU(T)                                                                          \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("TfFaceUvInterpolate").Device(DEVICE_CPU).TypeConstraint<T>("T"), UvInterpolateOp<T>); \
  REGISTER_KERNEL_BUILDER(Name("TfFaceUvInterpolateGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          UvInterpolateGradOp<T>);                                               \
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShade").Device(DEVICE_CPU).TypeConstraint<T>("T"),       \
                          ShShadeOp<T>);                                                         \
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShadeGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),   \
                          ShShadeGradOp<T>);                                                     \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("TfFaceLaplacianSmoothness").Device(DEVICE_CPU).TypeConstraint<T>("T"),               \
      LaplacianSmoothnessOp<T>);                                                                 \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("TfFaceLaplacianSmoothnessGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),           \
      LaplacianSmoothnessGradOp<T>);                                                             \
  REGISTER_KERNEL_BUILDER(Name("TfFaceUvRender").Device(DEVICE_CPU).TypeConstraint<T>("T"),      \
                          UvRenderOp<T>);                                                        \
  REGISTER_KERNEL_BUILDER(Name("TfFaceUvRenderGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),  \
                          UvRenderGradOp<T>);

REGISTER_CPU(float);
REGISTER_CPU(double);
REGISTER_KERNEL_BUILDER(Name("TfFaceUvAtlasCsr").Device(DEVICE_CPU), UvAtlasCsrOp);
REGISTER_KERNEL_BUILDER(Name("TfFaceCsrTranspose").Device(DEVICE_CPU), CsrTransposeOp);

}  // namespace tf_face
