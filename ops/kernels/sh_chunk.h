// CPU SH shading on chunks of kShLanes texels in structure-of-arrays form, so
// the compiler vectorises the maths across texels (the per-texel functions of
// ops/kernels/sh_math.h are the GPU path and the specification; these compute
// the same formulas). Inputs are AoS [m, 3]; texels with valid[k] == false (or
// k >= m) are treated as g = a = n = 0, which makes every output zero.
#ifndef TF_FACE_OPS_KERNELS_SH_CHUNK_H_
#define TF_FACE_OPS_KERNELS_SH_CHUNK_H_

#include <cmath>

#include "ops/kernels/sh_math.h"

namespace tf_face {

constexpr int kShLanes = 8;

template <typename T>
struct ShLanes {
  T x[kShLanes], y[kShLanes], z[kShLanes], inv[kShLanes];
  T h[9][kShLanes];
};

template <typename T>
inline void ShLoadNormals(int m, const T* n, const bool* valid, ShLanes<T>* L) {
  for (int k = 0; k < kShLanes; ++k) {
    const bool on = k < m && (valid == nullptr || valid[k]);
    L->x[k] = on ? n[3 * k] : T(0);
    L->y[k] = on ? n[3 * k + 1] : T(0);
    L->z[k] = on ? n[3 * k + 2] : T(0);
  }
  for (int k = 0; k < kShLanes; ++k) {
    const T sq = L->x[k] * L->x[k] + L->y[k] * L->y[k] + L->z[k] * L->z[k];
    const T inv = sq > T(0) ? T(1) / std::sqrt(sq > T(0) ? sq : T(1)) : T(0);
    L->inv[k] = inv;
    L->x[k] *= inv;
    L->y[k] *= inv;
    L->z[k] *= inv;
  }
  const T k0 = T(TFF_SH_K0), k1 = T(TFF_SH_K1), k2 = T(TFF_SH_K2), k3 = T(TFF_SH_K3), k4 = T(TFF_SH_K4);
  for (int k = 0; k < kShLanes; ++k) {
    const T x = L->x[k], y = L->y[k], z = L->z[k];
    L->h[0][k] = k0;
    L->h[1][k] = k1 * y;
    L->h[2][k] = k1 * z;
    L->h[3][k] = k1 * x;
    L->h[4][k] = k2 * x * y;
    L->h[5][k] = k2 * y * z;
    L->h[6][k] = k3 * (T(3) * z * z - T(1));
    L->h[7][k] = k2 * x * z;
    L->h[8][k] = k4 * (x * x - y * y);
  }
}

// out[k, c] = a[k, c] * sum_i s[3i + c] H_i(n_k)
template <typename T>
inline void ShShadeChunk(int m, const T* a, const T* n, const bool* valid, const T* s, T* out) {
  ShLanes<T> L;
  ShLoadNormals(m, n, valid, &L);
  T irr[3][kShLanes];
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < kShLanes; ++k) {
      T l = T(0);
      for (int i = 0; i < 9; ++i) l += s[3 * i + c] * L.h[i][k];
      irr[c][k] = l;
    }
  for (int k = 0; k < m; ++k) {
    const bool on = valid == nullptr || valid[k];
    for (int c = 0; c < 3; ++c) out[3 * k + c] = on ? a[3 * k + c] * irr[c][k] : T(0);
  }
}

// Backward of ShShadeChunk: writes da, dn [m, 3]; adds d_sh into acc[27].
template <typename T, typename Acc>
inline void ShGradChunk(int m, const T* g, const T* a, const T* n, const bool* valid, const T* s,
                        T* da, T* dn, Acc* acc) {
  ShLanes<T> L;
  ShLoadNormals(m, n, valid, &L);
  T gs[3][kShLanes], ga[3][kShLanes];
  for (int k = 0; k < kShLanes; ++k) {
    const bool on = k < m && (valid == nullptr || valid[k]);
    for (int c = 0; c < 3; ++c) {
      gs[c][k] = on ? g[3 * k + c] : T(0);
      ga[c][k] = on ? g[3 * k + c] * a[3 * k + c] : T(0);
    }
  }
  T dh[9][kShLanes];
  for (int i = 0; i < 9; ++i)
    for (int k = 0; k < kShLanes; ++k)
      dh[i][k] = ga[0][k] * s[3 * i] + ga[1][k] * s[3 * i + 1] + ga[2][k] * s[3 * i + 2];
  for (int i = 0; i < 9; ++i)
    for (int c = 0; c < 3; ++c) {
      T sum = T(0);
      for (int k = 0; k < kShLanes; ++k) sum += ga[c][k] * L.h[i][k];
      acc[3 * i + c] += Acc(sum);
    }
  const T k1 = T(TFF_SH_K1), k2 = T(TFF_SH_K2), k3 = T(TFF_SH_K3), k4 = T(TFF_SH_K4);
  T dnx[kShLanes], dny[kShLanes], dnz[kShLanes], irr[3][kShLanes];
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < kShLanes; ++k) {
      T l = T(0);
      for (int i = 0; i < 9; ++i) l += s[3 * i + c] * L.h[i][k];
      irr[c][k] = l;
    }
  for (int k = 0; k < kShLanes; ++k) {
    const T x = L.x[k], y = L.y[k], z = L.z[k];
    const T gx = k1 * dh[3][k] + k2 * (y * dh[4][k] + z * dh[7][k]) + T(2) * k4 * x * dh[8][k];
    const T gy = k1 * dh[1][k] + k2 * (x * dh[4][k] + z * dh[5][k]) - T(2) * k4 * y * dh[8][k];
    const T gz = k1 * dh[2][k] + k2 * (y * dh[5][k] + x * dh[7][k]) + T(6) * k3 * z * dh[6][k];
    const T dot = x * gx + y * gy + z * gz;
    dnx[k] = L.inv[k] * (gx - x * dot);
    dny[k] = L.inv[k] * (gy - y * dot);
    dnz[k] = L.inv[k] * (gz - z * dot);
  }
  for (int k = 0; k < m; ++k) {
    for (int c = 0; c < 3; ++c) da[3 * k + c] = gs[c][k] * irr[c][k];
    dn[3 * k] = dnx[k];
    dn[3 * k + 1] = dny[k];
    dn[3 * k + 2] = dnz[k];
  }
}

}  // namespace tf_face

#endif  // TF_FACE_OPS_KERNELS_SH_CHUNK_H_
