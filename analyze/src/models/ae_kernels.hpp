// The tied-weight autoencoder's SGD step and reconstruction error on raw buffers (a KitNET dA:
// sigmoid hidden layer, sigmoid or linear decoder). Every function is forced inline, so that a
// caller that passes the sizes as constants gets loops of known length (unrolled, in
// registers) and a caller compiled for another instruction set gets them in that set. Every
// sum adds its terms in one fixed order (h = 0, 1, ... or v = 0, 1, ...) and nothing is fused
// (no FMA), so every size, instantiation and instruction set gives the same values, to the bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace immunizer::analyze::ae_kernels {

#define IMMUNIZER_AE_INLINE inline __attribute__((always_inline))

// The weights: w(h, v) = w[v * nh + h] (Eigen's column-major hidden x visible), biases bh
// (hidden) and bv (visible).
struct Weights {
  double* w;
  double* bh;
  double* bv;
};
struct ConstWeights {
  const double* w;
  const double* bh;
  const double* bv;
};

IMMUNIZER_AE_INLINE double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// hidden = sigmoid(bh + W x), each sum over v in order.
IMMUNIZER_AE_INLINE void encode(ConstWeights a, std::ptrdiff_t nh, std::ptrdiff_t nv,
                                const double* __restrict x, double* __restrict hidden) {
  for (std::ptrdiff_t h = 0; h < nh; ++h) hidden[h] = a.bh[h];
  for (std::ptrdiff_t v = 0; v < nv; ++v) {
    const double xv = x[v];
    const double* __restrict col = a.w + v * nh;
    for (std::ptrdiff_t h = 0; h < nh; ++h) hidden[h] += col[h] * xv;
  }
  for (std::ptrdiff_t h = 0; h < nh; ++h) hidden[h] = sigmoid(hidden[h]);
}

// K decoder pre-activations at once, z[v + k] = bv[v + k] + W(:, v + k) . y, in K independent
// sums (one sum at a time chains every add on the one before it).
template <int K>
IMMUNIZER_AE_INLINE void decode_block(ConstWeights a, std::ptrdiff_t nh, std::ptrdiff_t v,
                                      const double* __restrict y, double* __restrict z) {
  double acc[K];
  for (int k = 0; k < K; ++k) acc[k] = a.bv[v + k];
  for (std::ptrdiff_t h = 0; h < nh; ++h)
    for (int k = 0; k < K; ++k) acc[k] += a.w[(v + k) * nh + h] * y[h];
  for (int k = 0; k < K; ++k) z[v + k] = acc[k];
}

// z = bv + W^T y (pre-activations of the decoder), each sum over h in order.
IMMUNIZER_AE_INLINE void decode(ConstWeights a, std::ptrdiff_t nh, std::ptrdiff_t nv,
                                const double* __restrict y, double* __restrict z) {
  std::ptrdiff_t v = 0;
  for (; v + 4 <= nv; v += 4) decode_block<4>(a, nh, v, y, z);
  for (; v < nv; ++v) decode_block<1>(a, nh, v, y, z);
}

// Scratch of a step: y and dy (nh each), dz (nv).
struct StepBuffers {
  double* y;
  double* dy;
  double* dz;
};

// One SGD step on x (squared reconstruction error; the linear decoder's error clipped to
// [-1, 1], so a few extreme inputs cannot blow the weights up).
IMMUNIZER_AE_INLINE void train_step(Weights a, std::ptrdiff_t nh, std::ptrdiff_t nv, bool linear,
                                    const double* __restrict x, double lr, StepBuffers b) {
  const ConstWeights c{a.w, a.bh, a.bv};
  double* __restrict y = b.y;
  double* __restrict dy = b.dy;
  double* __restrict dz = b.dz;
  encode(c, nh, nv, x, y);
  decode(c, nh, nv, y, dz);
  for (std::ptrdiff_t v = 0; v < nv; ++v) {
    if (linear) {
      dz[v] = std::clamp(dz[v] - x[v], -1.0, 1.0);
    } else {
      const double s = sigmoid(dz[v]);
      dz[v] = (s - x[v]) * s * (1.0 - s);
    }
  }
  for (std::ptrdiff_t h = 0; h < nh; ++h) dy[h] = 0;
  for (std::ptrdiff_t v = 0; v < nv; ++v) {
    const double d = dz[v];
    for (std::ptrdiff_t h = 0; h < nh; ++h) dy[h] += a.w[v * nh + h] * d;
  }
  for (std::ptrdiff_t h = 0; h < nh; ++h) dy[h] *= y[h] * (1.0 - y[h]);
  // Tied weights: the encoder and the decoder gradients both land on w.
  for (std::ptrdiff_t v = 0; v < nv; ++v)
    for (std::ptrdiff_t h = 0; h < nh; ++h) a.w[v * nh + h] -= lr * (dy[h] * x[v] + y[h] * dz[v]);
  for (std::ptrdiff_t h = 0; h < nh; ++h) a.bh[h] -= lr * dy[h];
  for (std::ptrdiff_t v = 0; v < nv; ++v) a.bv[v] -= lr * dz[v];
}

// The reconstruction of x into recon (nv), hidden (nh) as scratch; returns the RMSE.
IMMUNIZER_AE_INLINE double rmse(ConstWeights a, std::ptrdiff_t nh, std::ptrdiff_t nv, bool linear,
                                const double* __restrict x, double* __restrict recon,
                                double* __restrict hidden) {
  encode(a, nh, nv, x, hidden);
  decode(a, nh, nv, hidden, recon);
  if (!linear)
    for (std::ptrdiff_t v = 0; v < nv; ++v) recon[v] = sigmoid(recon[v]);
  double sq = 0;
  for (std::ptrdiff_t v = 0; v < nv; ++v) sq += (recon[v] - x[v]) * (recon[v] - x[v]);
  return std::sqrt(sq / static_cast<double>(nv));
}

#undef IMMUNIZER_AE_INLINE

}  // namespace immunizer::analyze::ae_kernels
