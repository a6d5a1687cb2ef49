// Keras's optimizer options beyond scikit-learn's: learning-rate schedules
// evaluated per step, gradient clipping (per weight, by value, global),
// decoupled weight decay, L1/L2 penalties, and the update rules of Keras's
// optimizers as its torch backend writes them (optimizers_extra.cpp).
#pragma once
#include <cstdint>

#include "neuraxis/network.hpp"

namespace neuraxis {

// lr(step) of opt's schedule (opt.learning_rate when it has none), Keras's
// formulas; `step` is the optimizer's iterations before the step.
double scheduled_lr(const OptConfig& opt, std::int64_t step);

// True when a step needs more than the scikit-learn kernels: an optimizer or
// option those do not have, clipping, weight decay or a penalty.
bool needs_keras_step(const OptConfig& opt);

// Throws ValueError unless the slot lists (m, v, s: their lengths) are the ones
// opt.kind and its options need, one array per parameter.
void check_keras_state(const OptConfig& opt, std::size_t m, std::size_t v, std::size_t s,
                       std::size_t params);

// The scalars of one step shared by every weight. Made once per batch after
// opt.t has advanced; advances Nadam's running product opt.u_product.
struct StepScalars {
    double lr = 0.0;     // this step's learning rate
    double alpha = 0.0;  // Adam: lr sqrt(1 - b2^t) / (1 - b1^t)
    double b1p = 0.0, b2p = 0.0;               // 1 - beta^t
    double u_t = 0.0, u_t1 = 0.0, up_t = 0.0, up_t1 = 0.0;  // Nadam
};
StepScalars step_scalars(OptConfig& opt, double lr);

// One weight's elements [0, n): the gradient g (times gscale, then clipped to
// +-clipvalue), weight decay p *= 1 - wd lr, then opt.kind's update of p and
// its slots s0, s1, s2 (null where the optimizer has none).
template <class T>
void keras_update(const OptConfig& opt, const StepScalars& s, T* p, T* s0, T* s1, T* s2,
                  const T* g, idx n, double gscale, double wd);

}  // namespace neuraxis
