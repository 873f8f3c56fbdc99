/* The CPU training step's element-wise and gather/scatter work, fused into a few loops.
 *
 * The math is export/decoder.py's (decode_texels) and its autograd backward; trainer/fused_step.py
 * calls these between the MLP's matrix multiplies (left to torch's BLAS) and
 * tests/test_fused_step.py holds both to it. Single-threaded on purpose: the trainer runs one
 * thread per process (see bench/choices.md). Built at first use by trainer/native.py.
 *
 * Latent rows a step reads are tracked without sorting: `mark[row]` holds the tag of the last step
 * that read the row and the row's place in that step's compact arrays (noisy values, gradient), so the forward pass, the backward scatter and the row-wise Adam all cost the batch,
 * never the table. The optimisers' loops are in optimisers.c.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

typedef struct {
    /* colour mip chain (the flattened training rows) */
    const int64_t *mip_offsets;  /* [mips + 1] */
    const int64_t *mip_sizes;    /* [mips * 2] (w, h) */
    int64_t mips;
    /* latent pyramid (one flat [rows, features] table) */
    const int64_t *level_offsets; /* [levels] */
    const int64_t *level_sizes;   /* [levels * 2] */
    int64_t levels;
    int64_t features;
    int64_t gather4;              /* high-res level: 4 taps concatenated instead of bilinear */
    int64_t pe_octaves;
} Layout;

enum { MAX_PE_OCTAVES = 8 };  /* trainer/fused_step.py refuses more */

static inline float triangle(float t) { return 1.0f - 4.0f * fabsf(t - floorf(t) - 0.5f); }

/* splitmix64's finaliser: a counter-based generator, so noise needs no state and a row reads the
 * same noise wherever it is tapped within a step. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t row_key(uint64_t seed, uint64_t step, uint64_t row) {
    return mix64(seed * 0x9E3779B97F4A7C15ull + mix64(step * 0xD1B54A32D192ED03ull + row));
}

/* uniform in [0, 1) for feature f of the row whose key is `key`: 16 bits each, four features
 * from one hash */
static inline float uniform01(uint64_t key, uint64_t f) {
    uint64_t h = mix64(key + (f >> 2) * 0x9E3779B97F4A7C15ull);
    return (float)((h >> (16 * (f & 3))) & 0xFFFF) * (1.0f / 65536.0f) + (0.5f / 65536.0f);
}

/* The 4 rows around (u, v) of a w x h grid whose first row is `base`, and the bilinear fraction
 * (export/decode/reference.py: bilinear_taps): latent levels and colour mips alike. */
static inline void grid_taps(int64_t w, int64_t h, int64_t base, float u, float v, int64_t *idx,
                             float *frac) {
    float px = u * (float)w - 0.5f, py = v * (float)h - 0.5f;
    float fx0 = floorf(px), fy0 = floorf(py);
    frac[0] = px - fx0;
    frac[1] = py - fy0;
    int64_t ix = (int64_t)fx0, iy = (int64_t)fy0;
    int64_t x0 = clampi(ix, 0, w - 1), x1 = clampi(ix + 1, 0, w - 1);
    int64_t y0 = clampi(iy, 0, h - 1), y1 = clampi(iy + 1, 0, h - 1);
    idx[0] = base + y0 * w + x0;
    idx[1] = base + y0 * w + x1;
    idx[2] = base + y1 * w + x0;
    idx[3] = base + y1 * w + x1;
}

/* The 4 table rows around (u, v) in latent `level`. */
static inline void taps(const Layout *L, int64_t level, float u, float v, int64_t *idx,
                        float *frac) {
    grid_taps(L->level_sizes[2 * level], L->level_sizes[2 * level + 1], L->level_offsets[level],
              u, v, idx, frac);
}

/* Row -> compact slot, adding the row (with its noisy copy) the first time this step reads it.
 * mark[row] holds (step tag << 32 | slot): one lookup tells both whether and where. */
static inline int32_t track(int64_t row, const float *table, int64_t F, int64_t *mark,
                            int64_t tag, float *compact, int64_t *touched,
                            int64_t *n_touched, float noise_amp, uint64_t seed, uint64_t step) {
    int64_t m = mark[row];
    if ((m >> 32) == tag) return (int32_t)(m & 0xFFFFFFFF);
    int32_t s = (int32_t)(*n_touched)++;
    mark[row] = (tag << 32) | (int64_t)s;
    touched[s] = row;
    const float *src = table + row * F;
    float *dst = compact + (int64_t)s * F;
    if (noise_amp > 0.0f) {
        uint64_t key = row_key(seed, step, (uint64_t)row);
        for (int64_t f = 0; f < F; ++f)
            dst[f] = src[f] + (uniform01(key, (uint64_t)f) - 0.5f) * noise_amp;
    } else if (noise_amp < 0.0f) {
        /* rounded to the grid of step -noise_amp on [-1, 1] (network.quantize_latents; the
         * gradient goes straight through) */
        const float levels = rintf(-2.0f / noise_amp), half = 0.5f * levels, q = 2.0f / levels;
        for (int64_t f = 0; f < F; ++f)
            dst[f] = rintf((minf(maxf(src[f], -1.0f), 1.0f) + 1.0f) * half) * q - 1.0f;
    } else {
        memcpy(dst, src, (size_t)F * sizeof(float));
    }
    return s;
}

static inline void bilinear(const float *t0, const float *t1, const float *t2, const float *t3,
                            const float *frac, int64_t F, float *restrict out) {
    float fx = frac[0], fy = frac[1];
    for (int64_t f = 0; f < F; ++f) {
        float top = t0[f] + (t1[f] - t0[f]) * fx;
        float bottom = t2[f] + (t3[f] - t2[f]) * fx;
        out[f] = top + (bottom - top) * fy;
    }
}

/* The mip, texel-centre place and uv of training row r; with `jitter` ([2] colour-mip texels, or
 * NULL) the uv moves off the centre by it and is kept within the mip's texel centres, as the
 * latent filter keeps it (filters.wrap_uv). Returns nonzero when the uv left the centre. */
static inline int texel_point(const Layout *L, int64_t r, const float *jitter, int64_t *mip,
                              float *u, float *v) {
    int64_t m = 0;
    while (m + 1 < L->mips && L->mip_offsets[m + 1] <= r) ++m;
    int64_t local = r - L->mip_offsets[m];
    int64_t w = L->mip_sizes[2 * m], h = L->mip_sizes[2 * m + 1];
    float x = (float)(local % w) + 0.5f, y = (float)(local / w) + 0.5f;
    *mip = m;
    if (jitter && (jitter[0] != 0.0f || jitter[1] != 0.0f)) {
        x = minf(maxf(x + jitter[0], 0.5f), (float)w - 0.5f);
        y = minf(maxf(y + jitter[1], 0.5f), (float)h - 0.5f);
        *u = x / (float)w;
        *v = y / (float)h;
        return 1;
    }
    *u = x / (float)w;
    *v = y / (float)h;
    return 0;
}

/* The positional code (decoder.positional_encoding) of latent-texel coordinates (qx, qy). */
static inline void encode_position(const Layout *L, float qx, float qy, float *out) {
    for (int64_t k = 0; k < L->pe_octaves; ++k) {
        float s = (float)(1 << k);
        for (int ph = 0; ph < 2; ++ph) {
            float phase = ph ? 0.25f : 0.0f;
            *out++ = triangle(qx * s + phase);
            *out++ = triangle(qy * s + phase);
        }
    }
}

/* MLP input rows for training rows `rows` of the flattened mip chain (decoder.encode_inputs at
 * texel centres; with `jitter` ([n, 2] or NULL) at the points texel_point gives, the positional
 * code there blended over the colour mip's 4 nearest texel centres as the latent filter blends
 * it: pe_grid = the mip's size). With track_rows != 0 the latents are read through the compact
 * per-step copy (noise_amp > 0: noised by +-noise_amp / 2; < 0: rounded to steps of -noise_amp)
 * and the slots are saved for encode_backward; otherwise straight from
 * `table`. tap_rows is scratch ([n, 8] table rows). Returns the number of rows in `touched`.
 * Two passes: the first places every texel's taps (and writes its positional code and LOD), so
 * the second can prefetch the table rows of texels ahead: those reads are random and would
 * otherwise wait on memory one after another. */
int64_t ntc_encode_forward(const Layout *L, const int64_t *rows, int64_t n, const float *table,
                           int64_t track_rows, float noise_amp, uint64_t seed, uint64_t step,
                           int64_t *mark, int64_t tag, float *compact,
                           int64_t *touched, int64_t *tap_rows, int32_t *tap_slots,
                           float *tap_fracs, float *X, int64_t ldx, const float *jitter) {
    const int64_t F = L->features;
    const int64_t last = L->levels - 1;
    const int64_t hi_cols = L->gather4 ? 4 * F + 2 : F;
    const float lod_den = (float)(L->mips - 1 > 1 ? L->mips - 1 : 1);
    for (int64_t i = 0; i < n; ++i) {
        int64_t m;
        float u, v;
        int moved = texel_point(L, rows[i], jitter ? jitter + 2 * i : 0, &m, &u, &v);
        int64_t lv[2] = {m < last ? m : last, m + 1 < last ? m + 1 : last};
        for (int k = 0; k < 2; ++k)
            taps(L, lv[k], u, v, tap_rows + i * 8 + k * 4, tap_fracs + i * 4 + k * 2);
        /* positional code in high-res latent texels, then the LOD */
        float *out = X + i * ldx + hi_cols + F;
        const float lw = (float)L->level_sizes[2 * lv[0]], lh = (float)L->level_sizes[2 * lv[0] + 1];
        const int64_t pe = 4 * L->pe_octaves;
        if (!moved) {
            encode_position(L, u * lw, v * lh, out);
        } else {
            float w = (float)L->mip_sizes[2 * m], h = (float)L->mip_sizes[2 * m + 1];
            float gx = u * w - 0.5f, gy = v * h - 0.5f;
            float g0x = floorf(gx), g0y = floorf(gy), fx = gx - g0x, fy = gy - g0y;
            float corner[4][4 * MAX_PE_OCTAVES];
            for (int c = 0; c < 4; ++c)
                encode_position(L, (g0x + (float)(c & 1) + 0.5f) / w * lw,
                                (g0y + (float)(c >> 1) + 0.5f) / h * lh, corner[c]);
            for (int64_t j = 0; j < pe; ++j) {
                float top = corner[0][j] * (1.0f - fx) + corner[1][j] * fx;
                float bottom = corner[2][j] * (1.0f - fx) + corner[3][j] * fx;
                out[j] = top * (1.0f - fy) + bottom * fy;
            }
        }
        out[pe] = (float)m / lod_den;
    }
    enum { AHEAD = 8 };
    int64_t n_touched = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (i + AHEAD < n) {
            const int64_t *ahead = tap_rows + (i + AHEAD) * 8;
            for (int t = 0; t < 8; ++t) {
                __builtin_prefetch(table + ahead[t] * F);  /* a row may straddle two lines */
                __builtin_prefetch(table + ahead[t] * F + F - 1);
                if (track_rows) __builtin_prefetch(mark + ahead[t]);
            }
        }
        float *out = X + i * ldx;
        for (int k = 0; k < 2; ++k) {
            const int64_t *idx = tap_rows + i * 8 + k * 4;
            const float *frac = tap_fracs + i * 4 + k * 2;
            const float *p[4];
            for (int t = 0; t < 4; ++t) {
                if (track_rows) {
                    int32_t s = track(idx[t], table, F, mark, tag, compact, touched, &n_touched,
                                      noise_amp, seed, step);
                    tap_slots[i * 8 + k * 4 + t] = s;
                    p[t] = compact + (int64_t)s * F;
                } else {
                    p[t] = table + idx[t] * F;
                }
            }
            if (k == 0 && L->gather4) {
                for (int t = 0; t < 4; ++t) memcpy(out + t * F, p[t], (size_t)F * sizeof(float));
                out[4 * F] = frac[0];
                out[4 * F + 1] = frac[1];
                out += 4 * F + 2;
            } else {
                bilinear(p[0], p[1], p[2], p[3], frac, F, out);
                out += F;
            }
        }
    }
    return n_touched;
}

/* Scatter the gradient of the MLP input's latent columns onto the compact rows (the transpose of
 * the bilinear blends / gather4 copies of encode_forward). grad must start at zero. */
void ntc_encode_backward(const Layout *L, int64_t n, const float *dX, int64_t ldx,
                         const int32_t *tap_slots, const float *tap_fracs, float *grad) {
    const int64_t F = L->features;
    for (int64_t i = 0; i < n; ++i) {
        const float *g = dX + i * ldx;
        for (int k = 0; k < 2; ++k) {
            const int32_t *s = tap_slots + i * 8 + k * 4;
            if (k == 0 && L->gather4) {
                for (int t = 0; t < 4; ++t) {
                    float *dst = grad + (int64_t)s[t] * F;
                    for (int64_t f = 0; f < F; ++f) dst[f] += g[t * F + f];
                }
                g += 4 * F + 2;
                continue;
            }
            float fx = tap_fracs[i * 4 + k * 2], fy = tap_fracs[i * 4 + k * 2 + 1];
            float w0 = (1.0f - fx) * (1.0f - fy), w1 = fx * (1.0f - fy);
            float w2 = (1.0f - fx) * fy, w3 = fx * fy;
            float *d0 = grad + (int64_t)s[0] * F, *d1 = grad + (int64_t)s[1] * F;
            float *d2 = grad + (int64_t)s[2] * F, *d3 = grad + (int64_t)s[3] * F;
            for (int64_t f = 0; f < F; ++f) {
                float gf = g[f];
                d0[f] += gf * w0;
                d1[f] += gf * w1;
                d2[f] += gf * w2;
                d3[f] += gf * w3;
            }
            g += F;
        }
    }
}

/* Activations are float32 or bfloat16 (the upper half of a float32, rounded to nearest even, as
 * torch rounds): the hidden layers' matrix multiplies may run in bfloat16. */
static inline float load(const void *p, int64_t i, int64_t bf16) {
    if (!bf16) return ((const float *)p)[i];
    uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void store(void *p, int64_t i, int64_t bf16, float x) {
    if (!bf16) {
        ((float *)p)[i] = x;
        return;
    }
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    ((uint16_t *)p)[i] = (uint16_t)(u >> 16);
}

/* hswish3(z) = min(z, 3) * clamp(z / 3 + 0.5, 0, 1) (decoder.hswish3) */
void ntc_hswish_forward(const void *z, int64_t z_bf16, void *a, int64_t a_bf16, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        float x = load(z, i, z_bf16);
        float gate = minf(maxf(x / 3.0f + 0.5f, 0.0f), 1.0f);
        store(a, i, a_bf16, minf(x, 3.0f) * gate);
    }
}

/* Column sums of a row-major [rows, cols] float32 or bfloat16 matrix into float32 `out`, in double:
 * a layer's bias gradient is the column sum of its output gradient. */
static void column_sums(const void *x, int64_t bf16, int64_t rows, int64_t cols, float *out) {
    enum { BLOCK = 256 };  /* columns summed per pass over the rows */
    double acc[BLOCK];
    for (int64_t c0 = 0; c0 < cols; c0 += BLOCK) {
        int64_t width = cols - c0 < BLOCK ? cols - c0 : BLOCK;
        for (int64_t c = 0; c < width; ++c) acc[c] = 0.0;
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t c = 0; c < width; ++c) acc[c] += (double)load(x, i * cols + c0 + c, bf16);
        for (int64_t c = 0; c < width; ++c) out[c0 + c] = (float)acc[c];
    }
}

/* hswish3'(x), as selects between values computed either way: the signs of the pre-activations
 * are data, and as branches they mispredicted (bench/choices.md). */
static inline float hswish_slope(float x) {
    float slope = x * (2.0f / 3.0f) + 0.5f;
    float d = x <= 1.5f ? slope : 1.0f;
    return (x < -1.5f) | (x > 3.0f) ? 0.0f : d;
}

/* dz = da * hswish3'(z) over [n / cols, cols]; da and dz may be the same buffer. With `bias_grad`,
 * also the column sums of dz as stored: the layer's bias gradient. */
void ntc_hswish_backward(const void *z, int64_t z_bf16, const void *da, int64_t da_bf16, void *dz,
                         int64_t dz_bf16, int64_t n, int64_t cols, float *bias_grad) {
    for (int64_t i = 0; i < n; ++i)
        store(dz, i, dz_bf16, load(da, i, da_bf16) * hswish_slope(load(z, i, z_bf16)));
    if (bias_grad) column_sums(dz, dz_bf16, n / cols, cols, bias_grad);
}

/* The training targets at the points texel_point gives for `rows` and `jitter` ([n, 2]): the
 * bilinear blend of the 4 nearest texels of the row's mip (the row's own values at its centre),
 * what trilinear filtering of the source gives there. Written to out [n, S]. */
void ntc_point_targets(const Layout *L, const int64_t *rows, int64_t n, const float *jitter,
                       const float *values, int64_t S, float *out) {
    for (int64_t i = 0; i < n; ++i) {
        int64_t m;
        float u, v;
        float *o = out + i * S;
        if (!texel_point(L, rows[i], jitter + 2 * i, &m, &u, &v)) {
            memcpy(o, values + rows[i] * S, (size_t)S * sizeof(float));
            continue;
        }
        int64_t idx[4];
        float frac[2];
        grid_taps(L->mip_sizes[2 * m], L->mip_sizes[2 * m + 1], L->mip_offsets[m], u, v, idx, frac);
        bilinear(values + idx[0] * S, values + idx[1] * S, values + idx[2] * S, values + idx[3] * S,
                 frac, S, o);
    }
}

/* Weighted L2 against the targets of `rows` (fit's loss), or against `targets` ([n, S], row i's
 * own; NULL: values[rows[i]]): writes d loss / d pred (and, with
 * `bias_grad`, its column sums: the output layer's bias gradient; with `texel_loss`, each row's
 * weighted loss, for the texel sampler) and returns the loss; *mse gets the unweighted mean
 * squared error (the progress estimate). */
double ntc_loss(const float *pred, const int64_t *rows, int64_t n, const float *values,
                int64_t S, const float *ch_w, const float *importance, float *dpred,
                double *mse, float *bias_grad, float *texel_loss, const float *targets) {
    double loss = 0.0, sq = 0.0;
    const float scale = 2.0f / (float)(n * S);
    enum { AHEAD = 48 };  /* target rows are scattered over the whole mip chain */
    for (int64_t i = 0; i < AHEAD && i < n && !targets; ++i)
        __builtin_prefetch(values + rows[i] * S);
    for (int64_t i = 0; i < n; ++i) {
        if (i + AHEAD < n && !targets) __builtin_prefetch(values + rows[i + AHEAD] * S);
        const float *p = pred + i * S, *t = targets ? targets + i * S : values + rows[i] * S;
        float imp = importance ? importance[rows[i]] : 1.0f;
        double texel = 0.0;
        for (int64_t c = 0; c < S; ++c) {
            float e = p[c] - t[c];
            sq += (double)e * e;
            texel += (double)e * e * ch_w[c];
            dpred[i * S + c] = scale * e * ch_w[c] * imp;
        }
        loss += texel * imp;
        if (texel_loss) texel_loss[i] = (float)(texel * imp / (double)S);
    }
    *mse = sq / (double)(n * S);
    if (bias_grad) column_sums(dpred, 0, n, S, bias_grad);
    return loss / (double)(n * S);
}
