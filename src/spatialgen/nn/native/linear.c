/*
 * Few-row linear layers, y = x W^T + b, for decoding on a CPU.
 *
 * Decoding one position multiplies 1-8 rows by every weight matrix, so the time is the time to read the
 * weights. BLAS kernels tuned for large products read a [N, K] matrix row by row, several rows at once,
 * and reach about two thirds of one core's streaming bandwidth. Here the weights are stored packed as
 * [ceil(N / 16), K, 16] (16 output features side by side, zero rows past N), so a product is one
 * sequential pass over memory: for each k, one 16-wide vector of weights is scaled by x[r, k] and added
 * to 16 accumulators per row. Written with GCC/Clang vector extensions, so the compiler picks the ISA
 * (AVX-512, AVX2, NEON) of the machine it is built on.
 *
 * Each output sums over k in UNROLL interleaved partial sums, added in a fixed order; the order is the same
 * for every row count, so a row's result depends only on that row, the weights and this binary: never on
 * the other rows, the row count, thread counts or timing.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 16
#define UNROLL 2
#define MAX_DIM 256
/* Prefetch distance in 64-byte lines (4 KiB). With 2+ rows the loop does more arithmetic per byte and
 * the hardware prefetcher alone leaves the core waiting: +30 % at 8 rows, none at 1 (bench_native.py). */
#define AHEAD 64
typedef float v16 __attribute__((vector_size(BLOCK * sizeof(float))));

static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store_block(float *y, v16 v, int64_t n) {
    if (n >= BLOCK) {
        memcpy(y, &v, sizeof v);
    } else {
        float tmp[BLOCK];
        memcpy(tmp, &v, sizeof v);
        memcpy(y, tmp, (size_t)n * sizeof(float));
    }
}

/* R rows; R * UNROLL accumulators stay in registers. */
#define DEFINE_ROWS(R)                                                                                 \
    static void linear_rows_##R(const float *wp, const float *bias, const float *x, int64_t ldx,       \
                                float *y, int64_t ldy, int64_t n_out, int64_t k_in) {                  \
        const int64_t blocks = (n_out + BLOCK - 1) / BLOCK;                                            \
        for (int64_t nb = 0; nb < blocks; nb++) {                                                      \
            const float *w = wp + nb * k_in * BLOCK;                                                   \
            v16 acc[UNROLL][R];                                                                        \
            for (int u = 0; u < UNROLL; u++)                                                           \
                for (int r = 0; r < R; r++) acc[u][r] = (v16){0};                                      \
            int64_t k = 0;                                                                             \
            for (; k + UNROLL <= k_in; k += UNROLL) {                                                  \
                for (int u = 0; u < UNROLL; u++) {                                                     \
                    if (R >= 2) __builtin_prefetch(w + (k + u + AHEAD) * BLOCK);                       \
                    const v16 wv = load16(w + (k + u) * BLOCK);                                        \
                    for (int r = 0; r < R; r++) acc[u][r] += wv * x[r * ldx + k + u];                  \
                }                                                                                      \
            }                                                                                          \
            for (; k < k_in; k++) {                                                                    \
                const v16 wv = load16(w + k * BLOCK);                                                  \
                for (int r = 0; r < R; r++) acc[0][r] += wv * x[r * ldx + k];                          \
            }                                                                                          \
            const int64_t left = n_out - nb * BLOCK;                                                   \
            v16 b = (v16){0};                                                                          \
            if (bias) {                                                                                \
                float tmp[BLOCK] = {0};                                                                \
                memcpy(tmp, bias + nb * BLOCK, (size_t)(left < BLOCK ? left : BLOCK) * sizeof(float)); \
                memcpy(&b, tmp, sizeof b);                                                             \
            }                                                                                          \
            for (int r = 0; r < R; r++) {                                                              \
                v16 s = acc[0][r];                                                                     \
                for (int u = 1; u < UNROLL; u++) s += acc[u][r];                                       \
                store_block(y + r * ldy + nb * BLOCK, s + b, left);                                    \
            }                                                                                          \
        }                                                                                              \
    }

DEFINE_ROWS(1)
DEFINE_ROWS(2)
DEFINE_ROWS(3)
DEFINE_ROWS(4)
DEFINE_ROWS(5)
DEFINE_ROWS(6)
DEFINE_ROWS(7)
DEFINE_ROWS(8)

typedef void (*rows_fn)(const float *, const float *, const float *, int64_t, float *, int64_t, int64_t,
                        int64_t);
static const rows_fn ROWS[9] = {0,           linear_rows_1, linear_rows_2, linear_rows_3, linear_rows_4,
                                linear_rows_5, linear_rows_6, linear_rows_7, linear_rows_8};

/* The block width the packing must use (checked by the Python side). */
int64_t sg_block(void) { return BLOCK; }

/* The largest head size sg_attend_one_f32 takes. */
int64_t sg_max_dim(void) { return MAX_DIM; }

/*
 * y[r, :] = x[r, :] W^T + bias for r < rows; wp: W packed [ceil(n_out / 16), k_in, 16]; bias may be NULL;
 * x and y rows are ldx and ldy floats apart. Rows are taken 8 at a time (the weights are read once per 8).
 */
void sg_linear_f32(const float *wp, const float *bias, const float *x, int64_t ldx, float *y, int64_t ldy,
                   int64_t rows, int64_t n_out, int64_t k_in) {
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
        const int64_t r = rows - r0 < 8 ? rows - r0 : 8;
        ROWS[r](wp, bias, x + r0 * ldx, ldx, y + r0 * ldy, ldy, n_out, k_in);
    }
}

/*
 * Single-query attention over a key/value cache: for each of `heads` (batch x head) pairs b,
 *   out[b] = softmax(scale * q[b] K[b, :length]^T) V[b, :length],
 * with K[b] and V[b] the rows of a [heads, capacity, dim] cache (row p at b * capacity * dim + p * dim),
 * q[b] at q + (b / q_group) * q_outer + (b % q_group) * dim (the query rows of a fused q/k/v product),
 * out [heads, dim] contiguous and `scores` scratch of `length` floats. Decoding reads each cached key and
 * value once, in order; dim must be a multiple of 16 and at most MAX_DIM.
 */
void sg_attend_one_f32(const float *q, int64_t q_group, int64_t q_outer, const float *keys,
                       const float *values, int64_t capacity, int64_t length, int64_t heads, int64_t dim,
                       float scale, float *scores, float *out) {
    const int64_t vecs = dim / BLOCK;
    for (int64_t b = 0; b < heads; b++) {
        const float *qb = q + (b / q_group) * q_outer + (b % q_group) * dim;
        const float *kb = keys + b * capacity * dim;
        const float *vb = values + b * capacity * dim;
        float top = -__builtin_inff();
        for (int64_t p = 0; p < length; p++) {
            v16 acc = (v16){0};
            for (int64_t i = 0; i < vecs; i++) acc += load16(qb + i * BLOCK) * load16(kb + p * dim + i * BLOCK);
            float s = 0.0f;
            for (int j = 0; j < BLOCK; j++) s += acc[j];
            s *= scale;
            scores[p] = s;
            top = s > top ? s : top;
        }
        float total = 0.0f;
        for (int64_t p = 0; p < length; p++) {
            scores[p] = expf(scores[p] - top);
            total += scores[p];
        }
        const float inv = 1.0f / total;
        v16 acc[MAX_DIM / BLOCK];
        for (int64_t i = 0; i < vecs; i++) acc[i] = (v16){0};
        for (int64_t p = 0; p < length; p++) {
            const float w = scores[p] * inv;
            for (int64_t i = 0; i < vecs; i++) acc[i] += load16(vb + p * dim + i * BLOCK) * w;
        }
        for (int64_t i = 0; i < vecs; i++) memcpy(out + b * dim + i * BLOCK, &acc[i], sizeof(v16));
    }
}
