// GPU kernels of the tf_face ops (compiled only with -DGOOGLE_CUDA=1).
//
// Shapes are checked on the host exactly as in the CPU kernels. Index values
// (CSR entries) live in device memory, so the CUDA
// kernels check them there and raise a device flag; the op reads the flag
// back (one small synchronous copy per op) and fails with InvalidArgument.
// TfFaceCsrTranspose stays a CPU op (O(nnz));
// TF copies their outputs to the GPU for the gradient kernels.
#if GOOGLE_CUDA

#include "ops/cuda/tf_face_kernels.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "xla/stream_executor/stream.h"

namespace tf_face {

using tensorflow::DEVICE_GPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::errors::Internal;
typedef long long int64;

namespace {

void* Stream(OpKernelContext* ctx) {
  return ctx->op_device_context()->stream()->platform_specific_handle().stream;
}

#define TFF_CUDA_OK(ctx, expr) \
  do { int e_ = (expr); OP_REQUIRES(ctx, e_ == 0, Internal("CUDA error ", e_, " in ", #expr)); } while (0)

const char* FlagMessage(int flag) {
  switch (flag) {
    case 3: return "adjacency/CSR column index out of range";
    case 4: return "malformed CSR row_ptr (must start at 0, not decrease, end at nnz)";
    default: return "invalid index";
  }
}

// Runs `launch(d_flag)` and turns a raised device flag into InvalidArgument.
template <typename F>
void WithFlag(OpKernelContext* ctx, F launch) {
  Tensor flag_t;
  OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_INT32, TensorShape({1}), &flag_t));
  int* d_flag = flag_t.flat<int32_t>().data();
  TFF_CUDA_OK(ctx, cuda::ClearFlag(d_flag, Stream(ctx)));
  TFF_CUDA_OK(ctx, launch(d_flag));
  int flag = 0;
  TFF_CUDA_OK(ctx, cuda::ReadFlag(d_flag, &flag, Stream(ctx)));
  OP_REQUIRES(ctx, flag == 0, InvalidArgument(FlagMessage(flag)));
}

}  // namespace

static bool ShadeShapesOk(OpKernelContext* ctx, const Tensor& albedo, const Tensor& normals, const Tensor& sh) {
  if (albedo.dims() != 4 || albedo.dim_size(3) != 3 || normals.shape() != albedo.shape() ||
      sh.shape() != TensorShape({albedo.dim_size(0), 9, 3}) || albedo.dim_size(0) == 0) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    InvalidArgument("sh_shade expects albedo = normals = [B, H, W, 3], sh = [B, 9, 3], B > 0"));
    return false;
  }
  return true;
}

template <typename T>
class ShShadeGpuOp : public OpKernel {
 public:
  explicit ShShadeGpuOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &albedo = ctx->input(0), &normals = ctx->input(1), &sh = ctx->input(2);
    if (!ShadeShapesOk(ctx, albedo, normals, sh)) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, albedo.shape(), &out));
    TFF_CUDA_OK(ctx, cuda::ShShade<T>(albedo.flat<T>().data(), normals.flat<T>().data(), sh.flat<T>().data(),
                                      albedo.dim_size(0), albedo.dim_size(1) * albedo.dim_size(2),
                                      out->flat<T>().data(), Stream(ctx)));
  }
};

template <typename T>
class ShShadeGradGpuOp : public OpKernel {
 public:
  explicit ShShadeGradGpuOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &grad = ctx->input(0), &albedo = ctx->input(1), &normals = ctx->input(2), &sh = ctx->input(3);
    if (!ShadeShapesOk(ctx, albedo, normals, sh)) return;
    OP_REQUIRES(ctx, grad.shape() == albedo.shape(), InvalidArgument("grad must match albedo"));
    const int64 B = albedo.dim_size(0), HW = albedo.dim_size(1) * albedo.dim_size(2);
    Tensor *ga = nullptr, *gn = nullptr, *gs = nullptr, scratch;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, albedo.shape(), &ga));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, normals.shape(), &gn));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, sh.shape(), &gs));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DataTypeToEnum<T>::value,
                                           TensorShape({cuda::ShGradScratch(B, HW)}), &scratch));
    TFF_CUDA_OK(ctx, cuda::ShShadeGrad<T>(grad.flat<T>().data(), albedo.flat<T>().data(), normals.flat<T>().data(),
                                          sh.flat<T>().data(), B, HW, ga->flat<T>().data(), gn->flat<T>().data(),
                                          gs->flat<T>().data(), scratch.flat<T>().data(), Stream(ctx)));
  }
};

static bool CsrShapesOk(OpKernelContext* ctx, const Tensor& values, const Tensor& rp, const Tensor& ci) {
  if (values.dims() != 3 || values.dim_size(0) == 0 || rp.dims() != 1 || ci.dims() != 1 ||
      rp.dim_size(0) != values.dim_size(1) + 1) {
    ctx->CtxFailure(__FILE__, __LINE__,
                    InvalidArgument("laplacian expects values [B, V, C] with B > 0, row_ptr [V + 1], col_idx [nnz]"));
    return false;
  }
  return true;
}

template <typename T>
class LaplacianGpuOp : public OpKernel {
 public:
  explicit LaplacianGpuOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &rp = ctx->input(1), &ci = ctx->input(2);
    if (!CsrShapesOk(ctx, x, rp, ci)) return;
    const int64 B = x.dim_size(0), V = x.dim_size(1), C = x.dim_size(2);
    Tensor *out = nullptr, scratch;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B}), &out));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DataTypeToEnum<T>::value,
                                           TensorShape({std::max<int64>(1, cuda::LaplacianScratch(B, V))}), &scratch));
    WithFlag(ctx, [&](int* flag) {
      return cuda::Laplacian<T>(x.flat<T>().data(), rp.flat<int32_t>().data(), ci.flat<int32_t>().data(), B, V, C,
                                ci.dim_size(0), out->flat<T>().data(), scratch.flat<T>().data(), flag, Stream(ctx));
    });
  }
};

template <typename T>
class LaplacianGradGpuOp : public OpKernel {
 public:
  explicit LaplacianGradGpuOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &rp = ctx->input(1), &ci = ctx->input(2), &trp = ctx->input(3),
                 &tci = ctx->input(4), &ge = ctx->input(5);
    if (!CsrShapesOk(ctx, x, rp, ci) || !CsrShapesOk(ctx, x, trp, tci)) return;
    OP_REQUIRES(ctx, ge.shape() == TensorShape({x.dim_size(0)}), InvalidArgument("grad_energy must be [B]"));
    OP_REQUIRES(ctx, ci.dim_size(0) == tci.dim_size(0), InvalidArgument("transposed adjacency size differs"));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &out));
    WithFlag(ctx, [&](int* flag) {
      return cuda::LaplacianGrad<T>(x.flat<T>().data(), rp.flat<int32_t>().data(), ci.flat<int32_t>().data(),
                                    trp.flat<int32_t>().data(), tci.flat<int32_t>().data(), ge.flat<T>().data(),
                                    x.dim_size(0), x.dim_size(1), x.dim_size(2), ci.dim_size(0),
                                    out->flat<T>().data(), flag, Stream(ctx));
    });
  }
};

#define REGISTER_GPU(T)                                                                                   \
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShade").Device(DEVICE_GPU).TypeConstraint<T>("T"), ShShadeGpuOp<T>); \
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShadeGrad").Device(DEVICE_GPU).TypeConstraint<T>("T"),           \
                          ShShadeGradGpuOp<T>);                                                           \
  REGISTER_KERNEL_BUILDER(Name("TfFaceLaplacianSmoothness").Device(DEVICE_GPU).TypeConstraint<T>("T"),   \
                          LaplacianGpuOp<T>);                                                             \
  REGISTER_KERNEL_BUILDER(Name("TfFaceLaplacianSmoothnessGrad").Device(DEVICE_GPU).TypeConstraint<T>("T"), \
                          LaplacianGradGpuOp<T>);

REGISTER_GPU(float);
REGISTER_GPU(double);

}  // namespace tf_face

#endif  // GOOGLE_CUDA
