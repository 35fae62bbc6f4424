// Op registrations, shape functions and CPU kernels of the tf_face custom ops.
//
// Ops (all float/double; index tensors int32; see ops/README.md for the maths):
//   TfFaceShShade              albedo[B,H,W,3], normals[B,H,W,3], sh[B,9,3]
//                              -> image[B,H,W,3]
//   TfFaceShShadeGrad          grad, albedo, normals, sh -> d_albedo,
//                              d_normals, d_sh
//   TfFaceCsrTranspose         row_ptr[V+1], col_idx[nnz] -> transposed CSR
//   TfFaceLaplacianSmoothness  values[B,V,C], row_ptr, col_idx -> energy[B]
//   TfFaceLaplacianSmoothnessGrad values, row_ptr, col_idx, t_row_ptr,
//                              t_col_idx, grad_energy[B] -> d_values[B,V,C]
//
// Determinism: no kernel uses atomics. Every reduction (d_sh, energy) is
// computed as partial sums over fixed-size blocks (independent of the thread
// count) that are then added in block order; the Laplacian gradient's
// scatter-add is a gather over a CSR transpose built by a stable
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
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShade").Device(DEVICE_CPU).TypeConstraint<T>("T"),       \
                          ShShadeOp<T>);                                                         \
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShadeGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),   \
                          ShShadeGradOp<T>);                                                     \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("TfFaceLaplacianSmoothness").Device(DEVICE_CPU).TypeConstraint<T>("T"),               \
      LaplacianSmoothnessOp<T>);                                                                 \
  REGISTER_KERNEL_BUILDER(                                                                       \
      Name("TfFaceLaplacianSmoothnessGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),           \
      LaplacianSmoothnessGradOp<T>);

REGISTER_CPU(float);
REGISTER_CPU(double);
REGISTER_KERNEL_BUILDER(Name("TfFaceCsrTranspose").Device(DEVICE_CPU), CsrTransposeOp);

}  // namespace tf_face
