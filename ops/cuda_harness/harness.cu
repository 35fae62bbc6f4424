// Standalone check + timing of the tf_face CUDA kernels (no TensorFlow).
//
//   ops/cuda_harness/run.sh            (build with nvcc, run, print the table)
//
// Builds random albedo / normals / SH maps on the host and the 6-neighbour
// 1-ring of the full texel grid; runs every kernel, compares with a plain CPU
// reference (max relative error), times it with CUDA events, and compares
// the time with the memory-bandwidth floor: bytes the op must move divided by
// the device bandwidth measured here with a device-to-device copy.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ops/cuda/tf_face_kernels.h"
#include "ops/kernels/sh_math.h"


#define CK(x)                                                                       \
  do {                                                                              \
    int e_ = (x);                                                                   \
    if (e_) {                                                                       \
      fprintf(stderr, "%s:%d CUDA error %d: %s\n", __FILE__, __LINE__, e_,         \
              cudaGetErrorString(static_cast<cudaError_t>(e_)));                    \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)

template <typename T>
T* Up(const std::vector<T>& h) {
  T* d = nullptr;
  CK(cudaMalloc(&d, std::max<size_t>(1, h.size()) * sizeof(T)));
  if (!h.empty()) CK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename T>
std::vector<T> Down(const T* d, size_t n) {
  std::vector<T> h(n);
  CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
double RelErr(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(a[i] - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return num / den;
}

void GridAdjacency(int H, int W, std::vector<int32_t>& rp, std::vector<int32_t>& ci) {
  const int dr[6] = {-1, -1, 0, 0, 1, 1}, dc[6] = {-1, 0, -1, 1, 0, 1};
  rp.assign(1, 0);
  ci.clear();
  for (int r = 0; r < H; ++r)
    for (int c = 0; c < W; ++c) {
      for (int k = 0; k < 6; ++k) {
        const int rr = r + dr[k], cc = c + dc[k];
        if (rr >= 0 && rr < H && cc >= 0 && cc < W) ci.push_back(rr * W + cc);
      }
      rp.push_back((int32_t)ci.size());
    }
}

struct Timer {
  cudaEvent_t a, b;
  Timer() { cudaEventCreate(&a); cudaEventCreate(&b); }
  template <typename F>
  double Ms(F f, int reps = 20) {
    f();
    CK(cudaDeviceSynchronize());
    cudaEventRecord(a);
    for (int i = 0; i < reps; ++i) f();
    cudaEventRecord(b);
    CK(cudaEventSynchronize(b));
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    return ms / reps;
  }
};

int main(int argc, char** argv) {
  const int B = 8, H = argc > 1 ? atoi(argv[1]) : 256, W = H, C = 3;
  const int64_t HW = (int64_t)H * W;
  std::mt19937 rng(1234);
  std::normal_distribution<float> N01(0.f, 1.f);
  std::uniform_real_distribution<float> U01(0.2f, 0.9f);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::vector<int32_t> grp, gci;
  GridAdjacency(H, W, grp, gci);  // symmetric: its transpose is itself
  const int GV = H * W;

  std::vector<float> albedo(B * HW * 3), normals(B * HW * 3), sh(B * 27),
      gmap(B * HW * 3), gval(B * GV * C), gE(B);
  for (auto& x : albedo) x = U01(rng);
  for (auto& x : normals) x = N01(rng);
  for (auto& x : sh) x = 0.3f * N01(rng);
  for (auto& x : gmap) x = N01(rng);
  for (auto& x : gval) x = N01(rng);
  for (auto& x : gE) x = N01(rng);

  float *d_albedo = Up(albedo), *d_normals = Up(normals),
        *d_sh = Up(sh), *d_gmap = Up(gmap), *d_gval = Up(gval), *d_gE = Up(gE);
  int32_t *d_grp = Up(grp), *d_gci = Up(gci);
  float *d_out, *d_out2, *d_out3, *d_scr, *d_dsh, *d_E, *d_gout;
  CK(cudaMalloc(&d_out, B * HW * 3 * 4)); CK(cudaMalloc(&d_out2, B * HW * 3 * 4));
  CK(cudaMalloc(&d_out3, B * HW * 3 * 4));
  CK(cudaMalloc(&d_scr, std::max(tf_face::cuda::ShGradScratch(B, HW), tf_face::cuda::LaplacianScratch(B, GV)) * 4));
  CK(cudaMalloc(&d_dsh, B * 27 * 4)); CK(cudaMalloc(&d_E, B * 4)); CK(cudaMalloc(&d_gout, B * GV * C * 4));
  int32_t* d_flag;
  CK(cudaMalloc(&d_flag, 4));
  CK(cudaMemset(d_flag, 0, 4));

  // Device bandwidth: device-to-device copy of 512 MiB (read + write).
  const size_t nbw = 512u << 20;
  void *bw_a, *bw_b;
  CK(cudaMalloc(&bw_a, nbw)); CK(cudaMalloc(&bw_b, nbw));
  Timer timer;
  const double bw_ms = timer.Ms([&] { cudaMemcpyAsync(bw_b, bw_a, nbw, cudaMemcpyDeviceToDevice); }, 10);
  const double bw = 2.0 * nbw / (bw_ms * 1e-3);  // bytes/s

  struct Row { std::string name; double err, ms, bytes; };
  std::vector<Row> rows;
  const int64_t nnzg = (int64_t)gci.size();
  const double fsz = 4.0;

  // 1. SH shade and its gradient.
  CK(tf_face::cuda::ShShade(d_albedo, d_normals, d_sh, B, HW, d_out, 0));
  {
    std::vector<float> got = Down(d_out, B * HW * 3);
    std::vector<double> ref(B * HW * 3);
    for (int b = 0; b < B; ++b)
      for (int64_t t = 0; t < HW; ++t) {
        const int64_t p = b * HW + t;
        double a[3], n[3], s[27], o[3];
        for (int c = 0; c < 3; ++c) { a[c] = albedo[3 * p + c]; n[c] = normals[3 * p + c]; }
        for (int j = 0; j < 27; ++j) s[j] = sh[b * 27 + j];
        tf_face::ShShadeTexel(a, n, s, o);
        for (int c = 0; c < 3; ++c) ref[3 * p + c] = o[c];
      }
    const double ms = timer.Ms([&] { tf_face::cuda::ShShade(d_albedo, d_normals, d_sh, B, HW, d_out, 0); });
    rows.push_back({"sh_shade", RelErr(got, ref), ms, 3 * B * HW * 3 * fsz});
  }
  CK(tf_face::cuda::ShShadeGrad(d_gmap, d_albedo, d_normals, d_sh, B, HW, d_out2, d_out3, d_dsh, d_scr, 0));
  {
    std::vector<float> ga = Down(d_out2, B * HW * 3), gn = Down(d_out3, B * HW * 3), gs = Down(d_dsh, B * 27);
    std::vector<double> ra(B * HW * 3), rn(B * HW * 3), rs(B * 27, 0.0);
    for (int b = 0; b < B; ++b)
      for (int64_t t = 0; t < HW; ++t) {
        const int64_t p = b * HW + t;
        double g[3], a[3], n[3], s[27], da[3], dn[3];
        for (int c = 0; c < 3; ++c) { g[c] = gmap[3 * p + c]; a[c] = albedo[3 * p + c]; n[c] = normals[3 * p + c]; }
        for (int j = 0; j < 27; ++j) s[j] = sh[b * 27 + j];
        tf_face::ShGradTexel(g, a, n, s, da, dn, &rs[b * 27]);
        for (int c = 0; c < 3; ++c) { ra[3 * p + c] = da[c]; rn[3 * p + c] = dn[c]; }
      }
    const double err = std::max({RelErr(ga, ra), RelErr(gn, rn), RelErr(gs, rs)});
    const double ms = timer.Ms([&] { tf_face::cuda::ShShadeGrad(d_gmap, d_albedo, d_normals, d_sh, B, HW, d_out2, d_out3, d_dsh, d_scr, 0); });
    rows.push_back({"sh_shade_grad", err, ms, 5 * B * HW * 3 * fsz});
  }
  // 2. Laplacian on the full 256x256 grid and its gradient.
  CK(tf_face::cuda::Laplacian(d_gval, d_grp, d_gci, B, GV, C, nnzg, d_E, d_scr, d_flag, 0));
  {
    std::vector<float> got = Down(d_E, B);
    std::vector<double> ref(B, 0.0);
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < GV; ++i)
        for (int k = grp[i]; k < grp[i + 1]; ++k)
          for (int c = 0; c < C; ++c) {
            const double d = (double)gval[(b * GV + i) * C + c] - gval[(b * GV + gci[k]) * C + c];
            ref[b] += d * d;
          }
    const double ms = timer.Ms([&] { tf_face::cuda::Laplacian(d_gval, d_grp, d_gci, B, GV, C, nnzg, d_E, d_scr, d_flag, 0); });
    rows.push_back({"laplacian", RelErr(got, ref), ms, B * GV * C * fsz + (GV + 1) * 4.0 + nnzg * 4.0});
  }
  CK(tf_face::cuda::LaplacianGrad(d_gval, d_grp, d_gci, d_grp, d_gci, d_gE, B, GV, C, nnzg, d_gout, d_flag, 0));
  {
    std::vector<float> got = Down(d_gout, B * GV * C);
    std::vector<double> ref(B * GV * C, 0.0);
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < GV; ++i)
        for (int k = grp[i]; k < grp[i + 1]; ++k)
          for (int c = 0; c < C; ++c)  // symmetric adjacency: both terms equal
            ref[(b * GV + i) * C + c] += 4.0 * gE[b] * ((double)gval[(b * GV + i) * C + c] - gval[(b * GV + gci[k]) * C + c]);
    const double ms = timer.Ms([&] { tf_face::cuda::LaplacianGrad(d_gval, d_grp, d_gci, d_grp, d_gci, d_gE, B, GV, C, nnzg, d_gout, d_flag, 0); });
    rows.push_back({"laplacian_grad", RelErr(got, ref), ms, 2 * B * GV * C * fsz + 2 * ((GV + 1) * 4.0 + nnzg * 4.0)});
  }
  const int flag = Down(d_flag, 1)[0];  // the harness may wait; the ops never do

  printf("device: %s, measured copy bandwidth %.0f GB/s\n", prop.name, bw / 1e9);
  printf("B=%d, %dx%d texels, grid V=%d nnz=%lld, float32\n", B, H, W, GV, (long long)nnzg);
  printf("%-22s %10s %10s %12s %10s %8s\n", "kernel", "max rel err", "time us", "floor us", "x floor", "check");
  bool ok = flag == 0;
  for (const Row& r : rows) {
    const double floor_us = r.bytes / bw * 1e6;
    const bool pass = r.err < 1e-4;
    ok = ok && pass;
    printf("%-22s %10.2e %10.1f %12.1f %10.2f %8s\n", r.name.c_str(), r.err, r.ms * 1e3, floor_us, r.ms * 1e3 / floor_us,
           pass ? "ok" : "FAIL");
  }
  printf("index flag: %d (0 = no out-of-range ids)\n%s\n", flag, ok ? "ALL OK" : "FAILED");
  return ok ? 0 : 1;
}
