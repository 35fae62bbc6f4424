// CUDA kernels of the tf_face ops (see tf_face_kernels.h). No TF types here.
#include "ops/cuda/tf_face_kernels.h"

#include <cuda_runtime.h>

#include "ops/kernels/sh_math.h"

namespace tf_face {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kShChunk = kThreads * 8;   // texels per block in reductions
constexpr int kLapChunk = kThreads * 4;  // vertices per block in reductions

inline int Blocks(i64 n, int threads = kThreads) {
  i64 b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 64 ? (b > 0 ? b : 1) : 65535 * 64);
}

__device__ __forceinline__ void SetFlag(int* flag, int code) { atomicCAS(flag, 0, code); }

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
                              const T* __restrict__ sh, i64 B, i64 HW, T* __restrict__ out) {
  for (i64 p = blockIdx.x * (i64)blockDim.x + threadIdx.x; p < B * HW; p += (i64)gridDim.x * blockDim.x) {
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
                                  const T* __restrict__ normals, const T* __restrict__ sh, i64 HW,
                                  T* __restrict__ d_albedo, T* __restrict__ d_normals,
                                  T* __restrict__ partial) {
  const i64 b = blockIdx.y;
  __shared__ T s[27];
  if (threadIdx.x < 27) s[threadIdx.x] = sh[b * 27 + threadIdx.x];
  __syncthreads();
  T acc[27];
#pragma unroll
  for (int j = 0; j < 27; ++j) acc[j] = T(0);
  const i64 t0 = blockIdx.x * (i64)kShChunk;
  for (i64 t = t0 + threadIdx.x; t < t0 + kShChunk && t < HW; t += kThreads) {
    const i64 p = b * HW + t;
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
__global__ void SumPartialsKernel(const T* __restrict__ partial, i64 rows, i64 nparts, i64 width,
                                  T* __restrict__ out) {
  const i64 q = blockIdx.x * (i64)blockDim.x + threadIdx.x;
  if (q >= rows * width) return;
  const i64 r = q / width, j = q - r * width;
  T s = T(0);
  for (i64 k = 0; k < nparts; ++k) s += partial[(r * nparts + k) * width + j];
  out[q] = s;
}

// grid = (num_chunks, B).
template <typename T>
__global__ void LaplacianKernel(const T* __restrict__ x, const int32_t* __restrict__ row_ptr,
                                const int32_t* __restrict__ col_idx, i64 V, i64 C, i64 nnz,
                                T* __restrict__ partial, int* flag) {
  const i64 b = blockIdx.y;
  const T* xb = x + b * V * C;
  T acc[1] = {T(0)};
  const i64 i0 = blockIdx.x * (i64)kLapChunk;
  for (i64 i = i0 + threadIdx.x; i < i0 + kLapChunk && i < V; i += kThreads) {
    i64 k0 = row_ptr[i], k1 = row_ptr[i + 1];
    if (k0 < 0 || k1 < k0 || k1 > nnz || (i == 0 && k0 != 0) || (i == V - 1 && k1 != nnz)) {
      SetFlag(flag, 4);
      continue;
    }
    for (i64 k = k0; k < k1; ++k) {
      const int32_t j = col_idx[k];
      if (j < 0 || j >= V) { SetFlag(flag, 3); continue; }
      for (i64 c = 0; c < C; ++c) {
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
                                    const T* __restrict__ grad_energy, i64 B, i64 V, i64 C, i64 nnz,
                                    T* __restrict__ out, int* flag) {
  for (i64 q = blockIdx.x * (i64)blockDim.x + threadIdx.x; q < B * V * C; q += (i64)gridDim.x * blockDim.x) {
    const i64 c = q % C, bv = q / C, i = bv % V, b = bv / V;
    const T* xb = x + b * V * C;
    const T xi = xb[i * C + c];
    T acc = T(0);
    const int32_t* rps[2] = {row_ptr, t_row_ptr};
    const int32_t* cis[2] = {col_idx, t_col_idx};
    for (int pass = 0; pass < 2; ++pass) {
      i64 k0 = rps[pass][i], k1 = rps[pass][i + 1];
      if (k0 < 0 || k1 < k0 || k1 > nnz) { SetFlag(flag, 4); continue; }
      for (i64 k = k0; k < k1; ++k) {
        const int32_t j = cis[pass][k];
        if (j < 0 || j >= V) { SetFlag(flag, 3); continue; }
        acc += xi - xb[j * C + c];
      }
    }
    out[q] = T(2) * grad_energy[b] * acc;
  }
}

}  // namespace

int ClearFlag(int* d_flag, void* stream) {
  return cudaMemsetAsync(d_flag, 0, sizeof(int), static_cast<cudaStream_t>(stream));
}

int ReadFlag(const int* d_flag, int* h_flag, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  int err = cudaMemcpyAsync(h_flag, d_flag, sizeof(int), cudaMemcpyDeviceToHost, s);
  if (err) return err;
  return cudaStreamSynchronize(s);
}

i64 ShGradScratch(i64 B, i64 HW) { return B * ((HW + kShChunk - 1) / kShChunk) * 27; }
i64 LaplacianScratch(i64 B, i64 V) { return B * ((V + kLapChunk - 1) / kLapChunk); }

template <typename T>
int ShShade(const T* albedo, const T* normals, const T* sh, i64 B, i64 HW, T* out, void* stream) {
  ShShadeKernel<T><<<Blocks(B * HW), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      albedo, normals, sh, B, HW, out);
  return cudaGetLastError();
}

template <typename T>
int ShShadeGrad(const T* grad, const T* albedo, const T* normals, const T* sh, i64 B, i64 HW,
                T* d_albedo, T* d_normals, T* d_sh, T* scratch, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const i64 chunks = (HW + kShChunk - 1) / kShChunk;
  ShShadeGradKernel<T><<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(B)), kThreads, 0, s>>>(
      grad, albedo, normals, sh, HW, d_albedo, d_normals, scratch);
  SumPartialsKernel<T><<<Blocks(B * 27), kThreads, 0, s>>>(scratch, B, chunks, 27, d_sh);
  return cudaGetLastError();
}

template <typename T>
int Laplacian(const T* values, const int32_t* row_ptr, const int32_t* col_idx, i64 B, i64 V, i64 C,
              i64 nnz, T* energy, T* scratch, int* d_flag, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const i64 chunks = (V + kLapChunk - 1) / kLapChunk;
  if (chunks == 0) {
    return cudaMemsetAsync(energy, 0, sizeof(T) * B, s);
  }
  LaplacianKernel<T><<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(B)), kThreads, 0, s>>>(
      values, row_ptr, col_idx, V, C, nnz, scratch, d_flag);
  SumPartialsKernel<T><<<Blocks(B), kThreads, 0, s>>>(scratch, B, chunks, 1, energy);
  return cudaGetLastError();
}

template <typename T>
int LaplacianGrad(const T* values, const int32_t* row_ptr, const int32_t* col_idx,
                  const int32_t* t_row_ptr, const int32_t* t_col_idx, const T* grad_energy, i64 B,
                  i64 V, i64 C, i64 nnz, T* out, int* d_flag, void* stream) {
  LaplacianGradKernel<T><<<Blocks(B * V * C), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      values, row_ptr, col_idx, t_row_ptr, t_col_idx, grad_energy, B, V, C, nnz, out, d_flag);
  return cudaGetLastError();
}

#define TFF_INSTANTIATE(T)                                                                        \
  template int ShShade<T>(const T*, const T*, const T*, i64, i64, T*, void*);                     \
  template int ShShadeGrad<T>(const T*, const T*, const T*, const T*, i64, i64, T*, T*, T*, T*,   \
                              void*);                                                             \
  template int Laplacian<T>(const T*, const int32_t*, const int32_t*, i64, i64, i64, i64, T*, T*, \
                            int*, void*);                                                         \
  template int LaplacianGrad<T>(const T*, const int32_t*, const int32_t*, const int32_t*,         \
                                const int32_t*, const T*, i64, i64, i64, i64, T*, int*, void*);

TFF_INSTANTIATE(float)
TFF_INSTANTIATE(double)

}  // namespace cuda
}  // namespace tf_face
