/* Small helpers the trainer's C kernels share (fused_step.c, optimisers.c). */
#ifndef NTC_KERNELS_H
#define NTC_KERNELS_H

#include <stdint.h>

static inline int64_t clampi(int64_t x, int64_t lo, int64_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* min/max without libm's NaN rules, so the loops vectorise */
static inline float minf(float a, float b) { return a < b ? a : b; }
static inline float maxf(float a, float b) { return a > b ? a : b; }

#endif
