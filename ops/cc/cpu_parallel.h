// ParallelFor over TF's intra-op thread pool (the Eigen CPU device), and the
// block size of the CPU kernels' deterministic reductions.
#ifndef TF_FACE_OPS_CC_CPU_PARALLEL_H_
#define TF_FACE_OPS_CC_CPU_PARALLEL_H_

#ifndef EIGEN_USE_THREADS
#define EIGEN_USE_THREADS
#endif
#include <cstdint>
#include <utility>

#include "unsupported/Eigen/CXX11/Tensor"

namespace tf_face {

// Texels or vertices per block of a reduction: partial sums over fixed blocks,
// added in block order, so the result does not depend on the thread count.
constexpr int64_t kReduceBlock = 2048;

// fn(begin, end) over [0, total) in shards; cost = cycles per unit.
template <typename F>
void ParallelFor(const Eigen::ThreadPoolDevice& d, int64_t total, int64_t cost, F&& fn) {
  d.parallelFor(total, Eigen::TensorOpCost(0, 0, static_cast<double>(cost)),
                [&fn](Eigen::Index begin, Eigen::Index end) { fn(int64_t{begin}, int64_t{end}); });
}

}  // namespace tf_face

#endif  // TF_FACE_OPS_CC_CPU_PARALLEL_H_
