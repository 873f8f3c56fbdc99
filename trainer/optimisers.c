/* The training step's optimisers: Adam on the MLP's parameters and the row-wise ("lazy") Adam on
 * the latent rows a step read. The rules are torch.optim.Adam's and
 * trainer.reference_step.RowAdam's; tests/test_fused_step.py holds them equal. Built into one
 * library with fused_step.c by trainer/native.py.
 */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

/* torch.optim.Adam's step (not fused, no weight decay, no amsgrad) on one parameter tensor; `step`
 * counts from 1. */
void ntc_adam(float *param, const float *grad, float *m, float *v, int64_t n, int64_t step,
              float lr, float b1, float b2, float eps) {
    const double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (int64_t i = 0; i < n; ++i) {
        float g = grad[i];
        m[i] += (g - m[i]) * (1.0f - b1);
        v[i] = v[i] * b2 + g * g * (1.0f - b2);
        param[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

/* 1 - beta^count; once beta^count is below float precision it is 1, and expf's underflow path is
 * slow, so it is not called. */
static inline float bias_correction(float count, float log_beta) {
    float e = count * log_beta;
    return e < -40.0f ? 1.0f : 1.0f - expf(e);
}

/* Row Adam's bias corrections for update counts 0 .. n - 1: out[2c] for b1, out[2c + 1] for b2.
 * Looked up instead of computed per row: two expf a row took a third of ntc_row_adam's time
 * (bench/choices.md), and the table's entries are the same floats. */
void ntc_bias_corrections(float b1, float b2, int64_t n, float *out) {
    const float log_b1 = logf(b1), log_b2 = logf(b2);
    for (int64_t c = 0; c < n; ++c) {
        out[2 * c] = bias_correction((float)c, log_b1);
        out[2 * c + 1] = bias_correction((float)c, log_b2);
    }
}

/* Adam on the rows a step read (trainer.reference_step.RowAdam's rule: per-row bias correction,
 * rows kept in [-1, 1]); zeroes their gradient for the next step. state: [rows, stride] with
 * m, v and the update count of each row side by side. corrections: ntc_bias_corrections' table
 * of n_corrections counts (counts past it are computed). */
void ntc_row_adam(float *table, float *state, int64_t stride, const int64_t *touched, int64_t n,
                  float *grad, int64_t F, float lr, float b1, float b2, float eps,
                  const float *corrections, int64_t n_corrections) {
    const float log_b1 = logf(b1), log_b2 = logf(b2);
    enum { AHEAD = 16 };
    for (int64_t j = 0; j < n; ++j) {
        if (j + AHEAD < n) {  /* rows are scattered over the table: fetch them ahead */
            int64_t next = touched[j + AHEAD];
            __builtin_prefetch(table + next * F, 1);
            __builtin_prefetch(table + next * F + F - 1, 1);
            for (int64_t k = 0; k < 2 * F + 1; k += 16) __builtin_prefetch(state + next * stride + k, 1);
        }
        int64_t row = touched[j];
        float *restrict mr = state + row * stride, *restrict vr = mr + F;
        float c = vr[F] + 1.0f;  /* the row's update count follows its moments */
        vr[F] = c;
        const int known = c < (float)n_corrections;
        const float bc1 = known ? corrections[2 * (int64_t)c] : bias_correction(c, log_b1);
        const float bc2 = known ? corrections[2 * (int64_t)c + 1] : bias_correction(c, log_b2);
        const float step_size = lr / bc1;
        const float inv_bc2_sqrt = 1.0f / sqrtf(bc2);
        float *restrict t = table + row * F;
        float *restrict g = grad + j * F;
#pragma GCC ivdep
        for (int64_t f = 0; f < F; ++f) {
            float gf = g[f];
            float mf = mr[f] * b1 + gf * (1.0f - b1);
            float vf = vr[f] * b2 + gf * gf * (1.0f - b2);
            mr[f] = mf;
            vr[f] = vf;
            t[f] = minf(maxf(t[f] - step_size * mf / (sqrtf(vf) * inv_bc2_sqrt + eps), -1.0f), 1.0f);
            g[f] = 0.0f;
        }
    }
}
