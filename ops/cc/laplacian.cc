// TfFaceLaplacianSmoothness(Grad): the OpKernel (one class per op, registered
// for CPU and, with -DGOOGLE_CUDA=1, GPU) and the CPU functors; and
// TfFaceCsrTranspose (CPU only: O(nnz) on constant adjacencies; in a GPU graph
// TF runs it on the CPU and copies its outputs). The maths is
// ops/kernels/laplacian_math.h.
#include "ops/cc/kernel_common.h"  // first: Eigen device macros

#include <algorithm>
#include <type_traits>
#include <vector>

#include "ops/cc/laplacian.h"
#include "ops/kernels/laplacian_math.h"

namespace tf_face {

namespace functor {

template <typename T>
int64_t LaplacianSmoothness<CPUDevice, T>::ScratchSize(int64_t, int64_t) {
  return 0;
}

template <typename T>
int LaplacianSmoothness<CPUDevice, T>::operator()(const CPUDevice& d, int64_t B, int64_t V, int64_t C,
                                                  int64_t nnz, const T* x, const int32_t* rp, const int32_t* ci,
                                                  T* /*scratch*/, int32_t* /*flag*/, T* energy) const {
  const int64_t nblk = std::max<int64_t>(1, (V + kReduceBlock - 1) / kReduceBlock);
  std::vector<double> partial(B * nblk, 0.0);
  const int64_t avg = V > 0 ? nnz / V + 1 : 1;
  ParallelFor(d, B * nblk, kReduceBlock * avg * (3 * C + 2), [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t b = q / nblk, blk = q - b * nblk;
      const T* xb = x + b * V * C;
      double acc = 0.0;
      const int64_t i1 = std::min(V, (blk + 1) * kReduceBlock);
      for (int64_t i = blk * kReduceBlock; i < i1; ++i) acc += LaplacianRowEnergy(xb, i, C, rp, ci);
      partial[q] = acc;
    }
  });
  for (int64_t b = 0; b < B; ++b) {
    double acc = 0.0;
    for (int64_t blk = 0; blk < nblk; ++blk) acc += partial[b * nblk + blk];
    energy[b] = static_cast<T>(acc);
  }
  return 0;
}

template <typename T>
int LaplacianSmoothnessGrad<CPUDevice, T>::operator()(const CPUDevice& d, int64_t B, int64_t V, int64_t C,
                                                      int64_t nnz, const T* x, const int32_t* rp,
                                                      const int32_t* ci, const int32_t* trp, const int32_t* tci,
                                                      const T* g, int32_t* /*flag*/, T* o) const {
  const int64_t avg = V > 0 ? 2 * nnz / V + 1 : 1;
  ParallelFor(d, B * V, avg * (3 * C + 2), [&](int64_t begin, int64_t end) {
    std::vector<T> acc(C);
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / V, i = p - b * V;
      const T* xb = x + b * V * C;
      std::fill(acc.begin(), acc.end(), T(0));
      LaplacianRowDiffs(xb, i, C, rp, ci, acc.data());
      LaplacianRowDiffs(xb, i, C, trp, tci, acc.data());
      const T scale = T(2) * g[b];
      for (int64_t c = 0; c < C; ++c) o[p * C + c] = scale * acc[c];
    }
  });
  return 0;
}

}  // namespace functor

// On CPU the index tensors are in host memory and are checked before the
// functor runs; on GPU they are in device memory and the kernels check them.
template <typename Device>
constexpr bool kIndicesOnHost = std::is_same<Device, CPUDevice>::value;

template <typename Device, typename T>
class LaplacianSmoothnessOp : public OpKernel {
 public:
  explicit LaplacianSmoothnessOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(0);
    const Tensor& row_ptr = ctx->input(1);
    const Tensor& col_idx = ctx->input(2);
    int64_t V = 0;
    OP_REQUIRES_OK(ctx, ValidateValues(values, &V));
    OP_REQUIRES_OK(ctx, ValidateCsrShapes(row_ptr, col_idx, V, "adjacency"));
    if (kIndicesOnHost<Device>) OP_REQUIRES_OK(ctx, ValidateCsrIndices(row_ptr, col_idx, "adjacency"));
    const int64_t B = values.dim_size(0), C = values.dim_size(2);
    using Functor = functor::LaplacianSmoothness<Device, T>;
    Tensor* out = nullptr;
    Tensor scratch, flag;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B}), &out));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DataTypeToEnum<T>::value,
                                           TensorShape({Functor::ScratchSize(B, V)}), &scratch));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_INT32, TensorShape({1}), &flag));
    const int err = Functor()(ctx->eigen_device<Device>(), B, V, C, col_idx.dim_size(0), values.flat<T>().data(),
                              row_ptr.flat<int32_t>().data(), col_idx.flat<int32_t>().data(),
                              scratch.flat<T>().data(), flag.flat<int32_t>().data(), out->flat<T>().data());
    OP_REQUIRES(ctx, err == 0, absl::InternalError(absl::StrCat("TfFaceLaplacianSmoothness: CUDA error ", err)));
  }
};

template <typename Device, typename T>
class LaplacianSmoothnessGradOp : public OpKernel {
 public:
  explicit LaplacianSmoothnessGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(0);
    const Tensor& grad_energy = ctx->input(5);
    int64_t V = 0;
    OP_REQUIRES_OK(ctx, ValidateValues(values, &V));
    OP_REQUIRES(ctx, grad_energy.dims() == 1 && grad_energy.dim_size(0) == values.dim_size(0),
                absl::InvalidArgumentError(absl::StrCat("grad_energy must be [B] = [", values.dim_size(0),
                                                        "], got ", grad_energy.shape().DebugString())));
    OP_REQUIRES_OK(ctx, ValidateCsrShapes(ctx->input(1), ctx->input(2), V, "adjacency"));
    OP_REQUIRES_OK(ctx, ValidateCsrShapes(ctx->input(3), ctx->input(4), V, "transposed adjacency"));
    OP_REQUIRES(ctx, ctx->input(2).dim_size(0) == ctx->input(4).dim_size(0),
                absl::InvalidArgumentError("transposed adjacency has a different number of entries"));
    if (kIndicesOnHost<Device>) {
      OP_REQUIRES_OK(ctx, ValidateCsrIndices(ctx->input(1), ctx->input(2), "adjacency"));
      OP_REQUIRES_OK(ctx, ValidateCsrIndices(ctx->input(3), ctx->input(4), "transposed adjacency"));
    }
    Tensor* out = nullptr;
    Tensor flag;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, values.shape(), &out));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_INT32, TensorShape({1}), &flag));
    const int err = functor::LaplacianSmoothnessGrad<Device, T>()(
        ctx->eigen_device<Device>(), values.dim_size(0), V, values.dim_size(2), ctx->input(2).dim_size(0),
        values.flat<T>().data(), ctx->input(1).flat<int32_t>().data(), ctx->input(2).flat<int32_t>().data(),
        ctx->input(3).flat<int32_t>().data(), ctx->input(4).flat<int32_t>().data(), grad_energy.flat<T>().data(),
        flag.flat<int32_t>().data(), out->flat<T>().data());
    OP_REQUIRES(ctx, err == 0,
                absl::InternalError(absl::StrCat("TfFaceLaplacianSmoothnessGrad: CUDA error ", err)));
  }
};

class CsrTransposeOp : public OpKernel {
 public:
  explicit CsrTransposeOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& row_ptr = ctx->input(0);
    const Tensor& col_idx = ctx->input(1);
    OP_REQUIRES(ctx, row_ptr.dims() == 1 && row_ptr.dim_size(0) >= 1,
                absl::InvalidArgumentError(
                    absl::StrCat("row_ptr must be a non-empty vector, got ", row_ptr.shape().DebugString())));
    const int64_t V = row_ptr.dim_size(0) - 1;
    OP_REQUIRES_OK(ctx, ValidateCsrShapes(row_ptr, col_idx, V, "adjacency"));
    OP_REQUIRES_OK(ctx, ValidateCsrIndices(row_ptr, col_idx, "adjacency"));
    Tensor *t_row_ptr = nullptr, *t_col_idx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, row_ptr.shape(), &t_row_ptr));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, col_idx.shape(), &t_col_idx));
    CsrTranspose(V, col_idx.dim_size(0), row_ptr.flat<int32_t>().data(), col_idx.flat<int32_t>().data(),
                 t_row_ptr->flat<int32_t>().data(), t_col_idx->flat<int32_t>().data());
  }
};

#define TFF_REGISTER(DEV, D, T)                                                        \
  REGISTER_KERNEL_BUILDER(Name("TfFaceLaplacianSmoothness").Device(DEV).TypeConstraint<T>("T"), \
                          LaplacianSmoothnessOp<D, T>);                                \
  REGISTER_KERNEL_BUILDER(Name("TfFaceLaplacianSmoothnessGrad").Device(DEV).TypeConstraint<T>("T"), \
                          LaplacianSmoothnessGradOp<D, T>);

TFF_REGISTER(tensorflow::DEVICE_CPU, CPUDevice, float)
TFF_REGISTER(tensorflow::DEVICE_CPU, CPUDevice, double)
#if GOOGLE_CUDA
TFF_REGISTER(tensorflow::DEVICE_GPU, GPUDevice, float)
TFF_REGISTER(tensorflow::DEVICE_GPU, GPUDevice, double)
#endif
#undef TFF_REGISTER

REGISTER_KERNEL_BUILDER(Name("TfFaceCsrTranspose").Device(tensorflow::DEVICE_CPU), CsrTransposeOp);

}  // namespace tf_face
