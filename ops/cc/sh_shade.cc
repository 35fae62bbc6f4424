// TfFaceShShade / TfFaceShShadeGrad: the OpKernel (one class per op, registered
// for CPU and, with -DGOOGLE_CUDA=1, GPU) and the CPU functors. The maths is
// ops/kernels/sh_math.h (per texel) / sh_chunk.h (8 texels, vectorised).
#include "ops/cc/kernel_common.h"  // first: Eigen device macros

#include <algorithm>
#include <vector>

#include "ops/cc/sh_shade.h"
#include "ops/kernels/sh_chunk.h"

namespace tf_face {

namespace functor {

template <typename T>
int ShShade<CPUDevice, T>::operator()(const CPUDevice& d, int64_t B, int64_t HW, const T* a, const T* n,
                                      const T* s, T* o) const {
  ParallelFor(d, B * HW, 80, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end;) {
      const int64_t b = p / HW;
      const int64_t stop = std::min(end, (b + 1) * HW);
      T sb[27];  // local copy: no aliasing with the output
      for (int j = 0; j < 27; ++j) sb[j] = s[b * 27 + j];
      while (p < stop) {
        const int m = static_cast<int>(std::min<int64_t>(kShLanes, stop - p));
        ShShadeChunk(m, a + 3 * p, n + 3 * p, nullptr, sb, o + 3 * p);
        p += m;
      }
    }
  });
  return 0;
}

template <typename T>
int ShShadeGrad<CPUDevice, T>::operator()(const CPUDevice& d, int64_t B, int64_t HW, const T* g, const T* a,
                                          const T* n, const T* s, T* oa, T* on, T* os, T* /*scratch*/) const {
  const int64_t nblk = (HW + kReduceBlock - 1) / kReduceBlock;
  std::vector<double> partial(B * nblk * 27, 0.0);
  ParallelFor(d, B * nblk, kReduceBlock * 150, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t b = q / nblk, blk = q - b * nblk;
      T sb[27];
      for (int j = 0; j < 27; ++j) sb[j] = s[b * 27 + j];
      double acc[27] = {0.0};
      const int64_t t1 = std::min(HW, (blk + 1) * kReduceBlock);
      for (int64_t t = blk * kReduceBlock; t < t1; t += kShLanes) {
        const int64_t p = b * HW + t;
        const int m = static_cast<int>(std::min<int64_t>(kShLanes, t1 - t));
        ShGradChunk(m, g + 3 * p, a + 3 * p, n + 3 * p, nullptr, sb, oa + 3 * p, on + 3 * p, acc);
      }
      for (int j = 0; j < 27; ++j) partial[q * 27 + j] = acc[j];
    }
  });
  for (int64_t b = 0; b < B; ++b)
    for (int j = 0; j < 27; ++j) {
      double acc = 0.0;
      for (int64_t blk = 0; blk < nblk; ++blk) acc += partial[(b * nblk + blk) * 27 + j];
      os[b * 27 + j] = static_cast<T>(acc);
    }
  return 0;
}

}  // namespace functor

template <typename Device, typename T>
class ShShadeOp : public OpKernel {
 public:
  explicit ShShadeOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& albedo = ctx->input(0);
    const Tensor& normals = ctx->input(1);
    const Tensor& sh = ctx->input(2);
    OP_REQUIRES_OK(ctx, ValidateShShade(albedo, normals, sh));
    const int64_t B = albedo.dim_size(0), HW = albedo.dim_size(1) * albedo.dim_size(2);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, albedo.shape(), &out));
    const int err = functor::ShShade<Device, T>()(ctx->eigen_device<Device>(), B, HW, albedo.flat<T>().data(),
                                                  normals.flat<T>().data(), sh.flat<T>().data(),
                                                  out->flat<T>().data());
    OP_REQUIRES(ctx, err == 0, absl::InternalError(absl::StrCat("TfFaceShShade: CUDA error ", err)));
  }
};

template <typename Device, typename T>
class ShShadeGradOp : public OpKernel {
 public:
  explicit ShShadeGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& albedo = ctx->input(1);
    const Tensor& normals = ctx->input(2);
    const Tensor& sh = ctx->input(3);
    OP_REQUIRES_OK(ctx, ValidateShShade(albedo, normals, sh, &grad));
    const int64_t B = albedo.dim_size(0), HW = albedo.dim_size(1) * albedo.dim_size(2);
    Tensor *ga = nullptr, *gn = nullptr, *gs = nullptr, scratch;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, albedo.shape(), &ga));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, normals.shape(), &gn));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, sh.shape(), &gs));
    using Functor = functor::ShShadeGrad<Device, T>;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DataTypeToEnum<T>::value,
                                           TensorShape({Functor::ScratchSize(B, HW)}), &scratch));
    const int err = Functor()(ctx->eigen_device<Device>(), B, HW, grad.flat<T>().data(), albedo.flat<T>().data(),
                              normals.flat<T>().data(), sh.flat<T>().data(), ga->flat<T>().data(),
                              gn->flat<T>().data(), gs->flat<T>().data(), scratch.flat<T>().data());
    OP_REQUIRES(ctx, err == 0, absl::InternalError(absl::StrCat("TfFaceShShadeGrad: CUDA error ", err)));
  }
};

#define TFF_REGISTER(DEV, D, T)                                                                      \
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShade").Device(DEV).TypeConstraint<T>("T"), ShShadeOp<D, T>); \
  REGISTER_KERNEL_BUILDER(Name("TfFaceShShadeGrad").Device(DEV).TypeConstraint<T>("T"),                 \
                          ShShadeGradOp<D, T>);

TFF_REGISTER(tensorflow::DEVICE_CPU, CPUDevice, float)
TFF_REGISTER(tensorflow::DEVICE_CPU, CPUDevice, double)
#if GOOGLE_CUDA
TFF_REGISTER(tensorflow::DEVICE_GPU, GPUDevice, float)
TFF_REGISTER(tensorflow::DEVICE_GPU, GPUDevice, double)
#endif
#undef TFF_REGISTER

}  // namespace tf_face
