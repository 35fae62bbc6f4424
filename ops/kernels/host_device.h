// TFF_HD: marks a maths function callable from host code and CUDA kernels.
#ifndef TF_FACE_OPS_KERNELS_HOST_DEVICE_H_
#define TF_FACE_OPS_KERNELS_HOST_DEVICE_H_

#ifdef __CUDACC__
#define TFF_HD __host__ __device__ __forceinline__
#else
#define TFF_HD inline
#endif

#endif  // TF_FACE_OPS_KERNELS_HOST_DEVICE_H_
