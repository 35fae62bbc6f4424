// CUDA kernels of the tf_face ops (see tf_face_kernels.h). No TF types here.
#include "ops/cuda/tf_face_kernels.h"

#include <cuda_runtime.h>

#include <cmath>

#include "ops/kernels/sh_math.h"

namespace tf_face {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kShChunk = kThreads * 8;   // texels per block in reductions
constexpr int kLapChunk = kThreads * 4;  // vertices per block in reductions

inline int Blocks(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 64 ? (b > 0 ? b : 1) : 65535 * 64);
}

__device__ __forceinline__ void SetFlag(int32_t* flag, int code) { atomicCAS(flag, 0, code); }

template <typename T>
__device__ __forceinline__ T WarpSum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Block-wide deterministic sum of N values per thread into out[N] (thread 0 writes).
template <typename T, int N>
__device__ void BlockSum(T (&v)[N], T* out) {
  __shared__ T warp_part[kThreads / 32][N];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const T s = WarpSum(v[j]);
    if (lane == 0) warp_part[warp][j] = s;
  }
  __syncthreads();
  if (threadIdx.x < N) {
    T s = T(0);
    for (int w = 0; w < kThreads / 32; ++w) s += warp_part[w][threadIdx.x];
    out[threadIdx.x] = s;
  }
}

template <typename T>
__global__ void ShShadeKernel(const T* __restrict__ albedo, const T* __restrict__ normals,
                              const T* __restrict__ sh, int64_t B, int64_t HW, T* __restrict__ out) {
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < B * HW; p += (int64_t)gridDim.x * blockDim.x) {
    const T* s = sh + (p / HW) * 27;
    T a[3] = {albedo[3 * p], albedo[3 * p + 1], albedo[3 * p + 2]};
    T n[3] = {normals[3 * p], normals[3 * p + 1], normals[3 * p + 2]};
    T o[3];
    ShShadeTexel(a, n, s, o);
    out[3 * p] = o[0]; out[3 * p + 1] = o[1]; out[3 * p + 2] = o[2];
  }
}

// grid = (num_chunks, B); each block owns kShChunk texels of one batch element.
template <typename T>
__global__ void ShShadeGradKernel(const T* __restrict__ grad, const T* __restrict__ albedo,
                                  const T* __restrict__ normals, const T* __restrict__ sh, int64_t HW,
                                  T* __restrict__ d_albedo, T* __restrict__ d_normals,
                                  T* __restrict__ partial) {
  const int64_t b = blockIdx.y;
  __shared__ T s[27];
  if (threadIdx.x < 27) s[threadIdx.x] = sh[b * 27 + threadIdx.x];
  __syncthreads();
  T acc[27];
#pragma unroll
  for (int j = 0; j < 27; ++j) acc[j] = T(0);
  const int64_t t0 = blockIdx.x * (int64_t)kShChunk;
  for (int64_t t = t0 + threadIdx.x; t < t0 + kShChunk && t < HW; t += kThreads) {
    const int64_t p = b * HW + t;
    T g[3] = {grad[3 * p], grad[3 * p + 1], grad[3 * p + 2]};
    T a[3] = {albedo[3 * p], albedo[3 * p + 1], albedo[3 * p + 2]};
    T n[3] = {normals[3 * p], normals[3 * p + 1], normals[3 * p + 2]};
    T da[3], dn[3];
    ShGradTexel(g, a, n, s, da, dn, acc);
    for (int c = 0; c < 3; ++c) { d_albedo[3 * p + c] = da[c]; d_normals[3 * p + c] = dn[c]; }
  }
  BlockSum<T, 27>(acc, partial + (b * gridDim.x + blockIdx.x) * 27);
}

// out[r * width + j] = sum_k partial[(r * nparts + k) * width + j], in order.
template <typename T>
__global__ void SumPartialsKernel(const T* __restrict__ partial, int64_t rows, int64_t nparts, int64_t width,
                                  T* __restrict__ out) {
  const int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (q >= rows * width) return;
  const int64_t r = q / width, j = q - r * width;
  T s = T(0);
  for (int64_t k = 0; k < nparts; ++k) s += partial[(r * nparts + k) * width + j];
  out[q] = s;
}

// grid = (num_chunks, B).
template <typename T>
__global__ void LaplacianKernel(const T* __restrict__ x, const int32_t* __restrict__ row_ptr,
                                const int32_t* __restrict__ col_idx, int64_t V, int64_t C, int64_t nnz,
                                T* __restrict__ partial, int32_t* flag) {
  const int64_t b = blockIdx.y;
  const T* xb = x + b * V * C;
  T acc[1] = {T(0)};
  const int64_t i0 = blockIdx.x * (int64_t)kLapChunk;
  for (int64_t i = i0 + threadIdx.x; i < i0 + kLapChunk && i < V; i += kThreads) {
    int64_t k0 = row_ptr[i], k1 = row_ptr[i + 1];
    if (k0 < 0 || k1 < k0 || k1 > nnz || (i == 0 && k0 != 0) || (i == V - 1 && k1 != nnz)) {
      SetFlag(flag, 4);
      continue;
    }
    for (int64_t k = k0; k < k1; ++k) {
      const int32_t j = col_idx[k];
      if (j < 0 || j >= V) { SetFlag(flag, 3); continue; }
      for (int64_t c = 0; c < C; ++c) {
        const T d = xb[i * C + c] - xb[j * C + c];
        acc[0] += d * d;
      }
    }
  }
  BlockSum<T, 1>(acc, partial + b * gridDim.x + blockIdx.x);
}

template <typename T>
__global__ void LaplacianGradKernel(const T* __restrict__ x, const int32_t* __restrict__ row_ptr,
                                    const int32_t* __restrict__ col_idx,
                                    const int32_t* __restrict__ t_row_ptr,
                                    const int32_t* __restrict__ t_col_idx,
                                    const T* __restrict__ grad_energy, int64_t B, int64_t V, int64_t C, int64_t nnz,
                                    T* __restrict__ out, int32_t* flag) {
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < B * V * C; q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = q % C, bv = q / C, i = bv % V, b = bv / V;
    const T* xb = x + b * V * C;
    const T xi = xb[i * C + c];
    T acc = T(0);
    const int32_t* rps[2] = {row_ptr, t_row_ptr};
    const int32_t* cis[2] = {col_idx, t_col_idx};
    for (int pass = 0; pass < 2; ++pass) {
      int64_t k0 = rps[pass][i], k1 = rps[pass][i + 1];
      if (k0 < 0 || k1 < k0 || k1 > nnz) { SetFlag(flag, 4); continue; }
      for (int64_t k = k0; k < k1; ++k) {
        const int32_t j = cis[pass][k];
        if (j < 0 || j >= V) { SetFlag(flag, 3); continue; }
        acc += xi - xb[j * C + c];
      }
    }
    out[q] = T(2) * grad_energy[b] * acc;
  }
}

// A raised index flag makes the whole output NaN (the op cannot fail without
// reading the flag back, which would block the host on the stream).
template <typename T>
__global__ void PoisonIfFlaggedKernel(const int32_t* __restrict__ flag, int64_t n, T* __restrict__ out) {
  if (*flag == 0) return;
  for (int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; q < n; q += (int64_t)gridDim.x * blockDim.x)
    out[q] = T(NAN);
}

}  // namespace

int64_t ShGradScratch(int64_t B, int64_t HW) { return B * ((HW + kShChunk - 1) / kShChunk) * 27; }
int64_t LaplacianScratch(int64_t B, int64_t V) { return B * ((V + kLapChunk - 1) / kLapChunk); }

template <typename T>
int ShShade(const T* albedo, const T* normals, const T* sh, int64_t B, int64_t HW, T* out, void* stream) {
  ShShadeKernel<T><<<Blocks(B * HW), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      albedo, normals, sh, B, HW, out);
  return cudaGetLastError();
}

template <typename T>
int ShShadeGrad(const T* grad, const T* albedo, const T* normals, const T* sh, int64_t B, int64_t HW,
                T* d_albedo, T* d_normals, T* d_sh, T* scratch, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t chunks = (HW + kShChunk - 1) / kShChunk;
  ShShadeGradKernel<T><<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(B)), kThreads, 0, s>>>(
      grad, albedo, normals, sh, HW, d_albedo, d_normals, scratch);
  SumPartialsKernel<T><<<Blocks(B * 27), kThreads, 0, s>>>(scratch, B, chunks, 27, d_sh);
  return cudaGetLastError();
}

template <typename T>
int Laplacian(const T* values, const int32_t* row_ptr, const int32_t* col_idx, int64_t B, int64_t V, int64_t C,
              int64_t nnz, T* energy, T* scratch, int32_t* d_flag, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t chunks = (V + kLapChunk - 1) / kLapChunk;
  if (chunks == 0) {
    return cudaMemsetAsync(energy, 0, sizeof(T) * B, s);
  }
  int err = cudaMemsetAsync(d_flag, 0, sizeof(int32_t), s);
  if (err) return err;
  LaplacianKernel<T><<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(B)), kThreads, 0, s>>>(
      values, row_ptr, col_idx, V, C, nnz, scratch, d_flag);
  SumPartialsKernel<T><<<Blocks(B), kThreads, 0, s>>>(scratch, B, chunks, 1, energy);
  PoisonIfFlaggedKernel<T><<<Blocks(B), kThreads, 0, s>>>(d_flag, B, energy);
  return cudaGetLastError();
}

template <typename T>
int LaplacianGrad(const T* values, const int32_t* row_ptr, const int32_t* col_idx,
                  const int32_t* t_row_ptr, const int32_t* t_col_idx, const T* grad_energy, int64_t B,
                  int64_t V, int64_t C, int64_t nnz, T* out, int32_t* d_flag, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  int err = cudaMemsetAsync(d_flag, 0, sizeof(int32_t), s);
  if (err) return err;
  LaplacianGradKernel<T><<<Blocks(B * V * C), kThreads, 0, s>>>(values, row_ptr, col_idx, t_row_ptr, t_col_idx,
                                                                 grad_energy, B, V, C, nnz, out, d_flag);
  PoisonIfFlaggedKernel<T><<<Blocks(B * V * C), kThreads, 0, s>>>(d_flag, B * V * C, out);
  return cudaGetLastError();
}

#define TFF_INSTANTIATE(T)                                                                        \
  template int ShShade<T>(const T*, const T*, const T*, int64_t, int64_t, T*, void*);                     \
  template int ShShadeGrad<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*, T*,   \
                              void*);                                                             \
  template int Laplacian<T>(const T*, const int32_t*, const int32_t*, int64_t, int64_t, int64_t, int64_t, T*, T*, \
                            int32_t*, void*);                                                         \
  template int LaplacianGrad<T>(const T*, const int32_t*, const int32_t*, const int32_t*,         \
                                const int32_t*, const T*, int64_t, int64_t, int64_t, int64_t, T*, int32_t*, void*);

TFF_INSTANTIATE(float)
TFF_INSTANTIATE(double)

}  // namespace cuda
}  // namespace tf_face
