/* The texel sampler's per-row loops (trainer/sampling.py's TexelSampler).
 *
 * The torch code in sampling.py is the reference and the fallback where no C compiler is found;
 * tests/test_sampling.py holds the two equal. Built into one library with fused_step.c by
 * trainer/native.py.
 */
#include <math.h>
#include <stdint.h>

/* The first index whose cumulative weight exceeds u (searchsorted, right), clamped to the last:
 * walked from guide[bucket of u], at most a step or two away (rounding either way is walked
 * back), instead of a binary search whose every level misses a branch and a cache line. */
static inline int64_t bucket(const double *cdf, int64_t blocks, double u) {
    int64_t k = (int64_t)(u / cdf[blocks - 1] * (double)blocks);
    return k < 0 ? 0 : (k >= blocks ? blocks - 1 : k);
}

static inline int64_t find_block(const double *cdf, int64_t blocks, int64_t b, double u) {
    while (b > 0 && cdf[b - 1] > u) --b;
    while (b < blocks - 1 && cdf[b] <= u) ++b;
    return b;
}

/* guide[k]: the block of u = k / blocks of the total weight, for find_block */
void ntc_guide_table(const double *cdf, int64_t blocks, int64_t *guide) {
    int64_t b = 0;
    for (int64_t k = 0; k < blocks; ++k) {
        const double u = cdf[blocks - 1] * (double)k / (double)blocks;
        while (b < blocks - 1 && cdf[b] <= u) ++b;
        guide[k] = b;
    }
}

/* A step's rows, and the block of each by-area row (for the loss it will report): first
 * n_guided by loss (block b: the first whose cumulative weight exceeds u1 * total; row:
 * start[b] + floor(u2 * length[b])), then the plain uniform rows `plain` (block: their mip's
 * first block plus their place in the mip over `block` rows), then n_mip rows of mips
 * `mip_pick`, at fraction u3 of each (sampling.place_in_mips). */
void ntc_sample_rows(const double *cdf, const int64_t *guide, int64_t blocks,
                     const int64_t *start, const float *length, const float *u1,
                     const float *u2, int64_t n_guided, const int64_t *plain, int64_t n_plain,
                     const int64_t *mip_pick, const float *u3, int64_t n_mip,
                     const int64_t *mip_offsets, int64_t mips, const int64_t *first_block,
                     int64_t block, int64_t *rows, int64_t *row_block) {
    const float total = (float)cdf[blocks - 1];
    /* the tables outsize the cache a training step leaves: rows go in groups, each table's
     * lines fetched for the whole group before any is read, so the misses overlap */
    enum { GROUP = 32 };
    double u[GROUP];
    int64_t first[GROUP];
    for (int64_t i0 = 0; i0 < n_guided; i0 += GROUP) {
        const int64_t g = n_guided - i0 < GROUP ? n_guided - i0 : GROUP;
        for (int64_t j = 0; j < g; ++j) {
            u[j] = (double)(u1[i0 + j] * total);
            first[j] = bucket(cdf, blocks, u[j]);
            __builtin_prefetch(guide + first[j]);
        }
        for (int64_t j = 0; j < g; ++j) {
            first[j] = guide[first[j]];
            __builtin_prefetch(cdf + first[j]);
            __builtin_prefetch(start + first[j]);
            __builtin_prefetch(length + first[j]);
        }
        for (int64_t j = 0; j < g; ++j) {
            const int64_t b = find_block(cdf, blocks, first[j], u[j]);
            rows[i0 + j] = start[b] + (int64_t)(u2[i0 + j] * length[b]);
            row_block[i0 + j] = b;
        }
    }
    for (int64_t i = 0; i < n_plain; ++i) {
        const int64_t r = plain[i];
        int64_t m = 0;
        while (m + 1 < mips && mip_offsets[m + 1] <= r) ++m;
        rows[n_guided + i] = r;
        row_block[n_guided + i] = first_block[m] + (r - mip_offsets[m]) / block;
    }
    int64_t *mip_rows = rows + n_guided + n_plain;
    for (int64_t i = 0; i < n_mip; ++i) {
        const int64_t m = mip_pick[i], count = mip_offsets[m + 1] - mip_offsets[m];
        const int64_t local = (int64_t)(u3[i] * (float)count);
        mip_rows[i] = mip_offsets[m] + (local < count - 1 ? local : count - 1);
    }
}

/* Each block's loss average takes in the losses of the rows drawn from it: keep * old +
 * take * new (keep + take = 1), or new where the block had none (inf). All old values are read before any
 * is written and a block drawn twice keeps its last row's update: torch's gather-then-index_put,
 * which the reference does. */
void ntc_observe_loss(float *loss, const int64_t *row_block, const float *texel_loss, int64_t n,
                      float keep, float take, float *scratch) {
    enum { AHEAD = 16 };
    for (int64_t i = 0; i < n; ++i) {
        if (i + AHEAD < n) __builtin_prefetch(loss + row_block[i + AHEAD]);
        const float old = loss[row_block[i]];
        scratch[i] = isfinite(old) ? keep * old + take * texel_loss[i] : texel_loss[i];
    }
    for (int64_t i = 0; i < n; ++i) loss[row_block[i]] = scratch[i];
}

/* trainer.sampling.Kronecker.take in the same float64 arithmetic: out[j, k] = frac(phase[k] +
 * j * step[k]) for j < n, then phase[k] = frac(phase[k] + n * step[k]). */
void ntc_kronecker(double *phase, const double *step, int64_t d, int64_t n, double *out) {
    for (int64_t j = 0; j < n; ++j)
        for (int64_t k = 0; k < d; ++k) {
            const double x = phase[k] + (double)j * step[k];
            out[j * d + k] = x - trunc(x);
        }
    for (int64_t k = 0; k < d; ++k) {
        const double x = phase[k] + (double)n * step[k];
        phase[k] = x - trunc(x);
    }
}

/* trainer.sampling.unit_float of v[0], v[stride], ... (n values in [0, 1)). */
void ntc_unit_floats(const double *v, int64_t stride, int64_t n, float *out) {
    for (int64_t i = 0; i < n; ++i)
        out[i] = (float)(floor(v[i * stride] * 16777216.0) / 16777216.0);
}

/* min(int(v * count), count - 1) of v[0], v[stride], ...: a place among `count` from [0, 1). */
void ntc_scaled_index(const double *v, int64_t stride, int64_t n, int64_t count, int64_t *out) {
    for (int64_t i = 0; i < n; ++i) {
        const int64_t k = (int64_t)(v[i * stride] * (double)count);
        out[i] = k < count - 1 ? k : count - 1;
    }
}
