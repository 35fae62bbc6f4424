// Second-order real spherical harmonics with the Lambertian (clamped cosine)
// convolution folded in. Plain C++ / CUDA, no TensorFlow types: the per-texel
// specification, used by the CUDA kernels, the standalone CUDA harness and
// (in vectorised form, sh_chunk.h) the CPU functor.
//
// Normal frame: tf_face camera frame (x right, y up, z towards the camera).
// Basis (Ramamoorthi & Hanrahan 2001, "An efficient representation for
// irradiance environment maps"; order l=0; l=1: m=-1,0,1; l=2: m=-2..2):
//   H0 = pi     * 0.5*sqrt(1/pi)                       = 0.886227
//   H1 = 2pi/3  * sqrt(3/(4pi)) * y                    = 1.023327 y
//   H2 = 2pi/3  * sqrt(3/(4pi)) * z                    = 1.023327 z
//   H3 = 2pi/3  * sqrt(3/(4pi)) * x                    = 1.023327 x
//   H4 = pi/4   * 0.5*sqrt(15/pi) * x*y                = 0.858086 xy
//   H5 = pi/4   * 0.5*sqrt(15/pi) * y*z                = 0.858086 yz
//   H6 = pi/4   * 0.25*sqrt(5/pi) * (3z^2 - 1)         = 0.247708 (3z^2-1)
//   H7 = pi/4   * 0.5*sqrt(15/pi) * x*z                = 0.858086 xz
//   H8 = pi/4   * 0.25*sqrt(15/pi) * (x^2 - y^2)       = 0.429043 (x^2-y^2)
// Shading: I_c = albedo_c * sum_i sh[i][c] * H_i(n / |n|); a zero normal gives
// n_hat = 0 (and zero gradient), so H = (H0, 0, ..., 0, -0.247708, 0, 0).
#ifndef TF_FACE_OPS_KERNELS_SH_MATH_H_
#define TF_FACE_OPS_KERNELS_SH_MATH_H_

#include <cmath>

#include "ops/kernels/host_device.h"

namespace tf_face {

// Lambertian-convolved SH constants (A_l * c_lm), double precision.
#define TFF_SH_K0 0.88622692545275794   /* pi * 0.5*sqrt(1/pi) */
#define TFF_SH_K1 1.0233267079464883    /* 2pi/3 * sqrt(3/(4pi)) */
#define TFF_SH_K2 0.85808553080978342   /* pi/4 * 0.5*sqrt(15/pi) */
#define TFF_SH_K3 0.24770795610037571   /* pi/4 * 0.25*sqrt(5/pi) */
#define TFF_SH_K4 0.42904276540489171   /* pi/4 * 0.25*sqrt(15/pi) */

template <typename T>
TFF_HD T ShNormalize(const T* n, T* nh) {
  const T sq = n[0] * n[0] + n[1] * n[1] + n[2] * n[2];
  const T inv = sq > T(0) ? T(1) / std::sqrt(sq) : T(0);
  nh[0] = n[0] * inv;
  nh[1] = n[1] * inv;
  nh[2] = n[2] * inv;
  return inv;
}

template <typename T>
TFF_HD void ShBasis(const T* nh, T* h) {
  const T x = nh[0], y = nh[1], z = nh[2];
  h[0] = T(TFF_SH_K0);
  h[1] = T(TFF_SH_K1) * y;
  h[2] = T(TFF_SH_K1) * z;
  h[3] = T(TFF_SH_K1) * x;
  h[4] = T(TFF_SH_K2) * x * y;
  h[5] = T(TFF_SH_K2) * y * z;
  h[6] = T(TFF_SH_K3) * (T(3) * z * z - T(1));
  h[7] = T(TFF_SH_K2) * x * z;
  h[8] = T(TFF_SH_K4) * (x * x - y * y);
}

// Shade one texel: out_c = a_c * sum_i s[3i+c] H_i.
template <typename T>
TFF_HD void ShShadeTexel(const T* a, const T* n, const T* s, T* out) {
  T nh[3], h[9];
  ShNormalize(n, nh);
  ShBasis(nh, h);
  for (int c = 0; c < 3; ++c) {
    T l = T(0);
    for (int i = 0; i < 9; ++i) l += s[3 * i + c] * h[i];
    out[c] = a[c] * l;
  }
}

// Backward of one texel. Writes d_albedo and d_normals, adds d_sh into acc[27]
// (acc type may be wider than T).
template <typename T, typename Acc>
TFF_HD void ShGradTexel(const T* g, const T* a, const T* n, const T* s, T* da, T* dn,
                        Acc* acc) {
  T nh[3], h[9];
  const T inv = ShNormalize(n, nh);
  ShBasis(nh, h);
  T ga[3];
  for (int c = 0; c < 3; ++c) {
    T l = T(0);
    for (int i = 0; i < 9; ++i) l += s[3 * i + c] * h[i];
    da[c] = g[c] * l;
    ga[c] = g[c] * a[c];
  }
  T dh[9];
  for (int i = 0; i < 9; ++i) {
    dh[i] = ga[0] * s[3 * i] + ga[1] * s[3 * i + 1] + ga[2] * s[3 * i + 2];
    acc[3 * i] += Acc(ga[0] * h[i]);
    acc[3 * i + 1] += Acc(ga[1] * h[i]);
    acc[3 * i + 2] += Acc(ga[2] * h[i]);
  }
  const T x = nh[0], y = nh[1], z = nh[2];
  const T k1 = T(TFF_SH_K1), k2 = T(TFF_SH_K2), k3 = T(TFF_SH_K3), k4 = T(TFF_SH_K4);
  const T gx = k1 * dh[3] + k2 * (y * dh[4] + z * dh[7]) + T(2) * k4 * x * dh[8];
  const T gy = k1 * dh[1] + k2 * (x * dh[4] + z * dh[5]) - T(2) * k4 * y * dh[8];
  const T gz = k1 * dh[2] + k2 * (y * dh[5] + x * dh[7]) + T(6) * k3 * z * dh[6];
  // d(n/|n|): (g - n_hat (n_hat . g)) / |n|
  const T dot = x * gx + y * gy + z * gz;
  dn[0] = inv * (gx - x * dot);
  dn[1] = inv * (gy - y * dot);
  dn[2] = inv * (gz - z * dot);
}

}  // namespace tf_face

#endif  // TF_FACE_OPS_KERNELS_SH_MATH_H_
