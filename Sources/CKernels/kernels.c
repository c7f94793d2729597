#include "CKernels.h"

#if defined(__x86_64__) && defined(__clang__)
// One clone per level; the loader's resolver picks the best the CPU supports.
#define DKC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DKC_CLONES
#endif

// 16 floats; unaligned loads and stores (aligned(4)).
typedef float v16 __attribute__((vector_size(64), aligned(4)));

DKC_CLONES
void dkc_weighted_sum(float *dst, const float *start, const float *sources, ptrdiff_t stride, const int32_t *indices,
                      const float *coefficients, ptrdiff_t terms, ptrdiff_t count) {
    ptrdiff_t i = 0;
    for (; i + 64 <= count; i += 64) {
        v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        ptrdiff_t t = 0;
        for (; t + 2 <= terms; t += 2) {
            const v16 *s = (const v16 *)(sources + (ptrdiff_t)indices[t] * stride + i);
            const v16 *r = (const v16 *)(sources + (ptrdiff_t)indices[t + 1] * stride + i);
            const float c = coefficients[t], e = coefficients[t + 1];
            a0 += c * s[0]; a1 += c * s[1]; a2 += c * s[2]; a3 += c * s[3];
            b0 += e * r[0]; b1 += e * r[1]; b2 += e * r[2]; b3 += e * r[3];
        }
        if (t < terms) {
            const v16 *s = (const v16 *)(sources + (ptrdiff_t)indices[t] * stride + i);
            const float c = coefficients[t];
            a0 += c * s[0]; a1 += c * s[1]; a2 += c * s[2]; a3 += c * s[3];
        }
        const v16 *b = (const v16 *)(start + i);
        v16 *d = (v16 *)(dst + i);
        const v16 r0 = b[0] + (a0 + b0), r1 = b[1] + (a1 + b1), r2 = b[2] + (a2 + b2), r3 = b[3] + (a3 + b3);
        d[0] = r0; d[1] = r1; d[2] = r2; d[3] = r3;
    }
    for (; i < count; i++) {
        float a = 0, b = 0;
        ptrdiff_t t = 0;
        for (; t + 2 <= terms; t += 2) {
            a += coefficients[t] * sources[(ptrdiff_t)indices[t] * stride + i];
            b += coefficients[t + 1] * sources[(ptrdiff_t)indices[t + 1] * stride + i];
        }
        if (t < terms) a += coefficients[t] * sources[(ptrdiff_t)indices[t] * stride + i];
        dst[i] = start[i] + (a + b);
    }
}

DKC_CLONES
void dkc_sum_rows(float *total, const float *base, const float *sources, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t count) {
    for (ptrdiff_t i = 0; i < count; i++) total[i] = base[i];
    for (ptrdiff_t f = 0; f < rows; f++) {
        const float *s = sources + f * stride;
        for (ptrdiff_t i = 0; i < count; i++) total[i] += s[i];
    }
}

typedef uint32_t v16i __attribute__((vector_size(64), aligned(4)));
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef double v8d __attribute__((vector_size(64), aligned(8)));

// exp by Cody–Waite reduction x = n·ln2 + r, a degree-7 polynomial for e^r and 2^n built in the exponent bits; inputs
// clamped to [-87.33654, 88] (the constants of the Swift `FastMath.exp`, relative error ≤ 2 ulp). A macro, not a
// function: a vector passed between functions compiled for different instruction sets would change the call ABI.
#define DKC_EXP16(input) ({                                                                 \
    const v16 zero_ = {0};                                                                 \
    v16 x_ = __builtin_elementwise_min(__builtin_elementwise_max((input), zero_ - 87.33654f), zero_ + 88.0f); \
    const v16 t_ = x_ * 1.44269504f + 12582912.0f;                                          \
    const v16 n_ = t_ - 12582912.0f;                                                        \
    const v16 r_ = x_ - n_ * 0.693359375f - n_ * -2.1219444e-4f;                            \
    const v16 r2_ = r_ * r_;                                                                \
    v16 p_ = zero_ + 1.98756915e-4f;                                                        \
    p_ = p_ * r_ + 1.39819995e-3f;                                                          \
    p_ = p_ * r_ + 8.3334519e-3f;                                                           \
    p_ = p_ * r_ + 4.1665796e-2f;                                                           \
    p_ = p_ * r_ + 1.66666655e-1f;                                                          \
    p_ = p_ * r_ + 5.0000001e-1f;                                                           \
    p_ = p_ * r2_ + r_ + 1.0f;                                                              \
    p_ * (v16)((((v16i)t_) + 127) << 23);                                                   \
})
#define DKC_EXP1(input) ({ const v16 z1_ = {0}; const v16 e1_ = DKC_EXP16(z1_ + (input)); e1_[0]; })

DKC_CLONES
float dkc_row_max(const float *row, ptrdiff_t n) {
    ptrdiff_t i = 0;
    float m = row[0];
    if (n >= 16) {
        v16 mv = *(const v16 *)row;
        for (i = 16; i + 16 <= n; i += 16) mv = __builtin_elementwise_max(mv, *(const v16 *)(row + i));
        m = __builtin_reduce_max(mv);
    }
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    return m;
}

DKC_CLONES
double dkc_exp_sum(float *out, const float *row, ptrdiff_t n, float m) {
    v8d acc = {0};
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const v16 e = DKC_EXP16(*(const v16 *)(row + i) - m);
        if (out) *(v16 *)(out + i) = e;
        const v8f lo = __builtin_shufflevector(e, e, 0, 1, 2, 3, 4, 5, 6, 7);
        const v8f hi = __builtin_shufflevector(e, e, 8, 9, 10, 11, 12, 13, 14, 15);
        acc += __builtin_convertvector(lo, v8d) + __builtin_convertvector(hi, v8d);
    }
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) {
        const float e = DKC_EXP1(row[i] - m);
        if (out) out[i] = e;
        s += (double)e;
    }
    return s;
}

DKC_CLONES
void dkc_exp_scale(float *out, const float *row, ptrdiff_t n, float m, float k) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) *(v16 *)(out + i) = DKC_EXP16(*(const v16 *)(row + i) - m) * k;
    for (; i < n; i++) out[i] = DKC_EXP1(row[i] - m) * k;
}

DKC_CLONES
void dkc_scale(float *row, ptrdiff_t n, float k) {
    for (ptrdiff_t i = 0; i < n; i++) row[i] *= k;
}

// σ(2u) of GELU's tanh form (½(1 + tanh u) = σ(2u)), accurate in both tails.
#define DKC_GELU_SIGMA(x) ({ const v16 gx_ = (x); 1.0f / (1.0f + DKC_EXP16((gx_ + 0.044715f * gx_ * gx_ * gx_) * (-2.0f * 0.79788456f))); })
#define DKC_GELU(x) ({ const v16 gy_ = (x); gy_ * DKC_GELU_SIGMA(gy_); })
#define DKC_GELU_SLOPE(x) ({ const v16 sx_ = (x); const v16 sg_ = DKC_GELU_SIGMA(sx_); \
    sg_ + (2.0f * 0.79788456f) * sx_ * sg_ * (1.0f - sg_) * (1.0f + (3.0f * 0.044715f) * sx_ * sx_); })

// Loop tails go through the vector code on a copy padded with zeros, so every element gets the same arithmetic.
#define DKC_TAIL_LOAD(dst, src, k) do { for (ptrdiff_t j_ = 0; j_ < 16; j_++) (dst)[j_] = j_ < (k) ? (src)[j_] : 0.0f; } while (0)

DKC_CLONES
void dkc_gelu_forward(float *out, const float *inp, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) *(v16 *)(out + i) = DKC_GELU(*(const v16 *)(inp + i));
    if (i < n) {
        v16 x;
        DKC_TAIL_LOAD(x, inp + i, n - i);
        const v16 y = DKC_GELU(x);
        for (ptrdiff_t j = 0; j < n - i; j++) out[i + j] = y[j];
    }
}

DKC_CLONES
void dkc_gelu_bias_forward(float *out, float *pre, const float *bias, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const v16 x = *(const v16 *)(pre + i) + *(const v16 *)(bias + i);
        *(v16 *)(pre + i) = x;
        *(v16 *)(out + i) = DKC_GELU(x);
    }
    if (i < n) {
        v16 x;
        for (ptrdiff_t j = 0; j < 16; j++) x[j] = j < n - i ? pre[i + j] + bias[i + j] : 0.0f;
        const v16 y = DKC_GELU(x);
        for (ptrdiff_t j = 0; j < n - i; j++) { pre[i + j] = x[j]; out[i + j] = y[j]; }
    }
}

DKC_CLONES
void dkc_gelu_backward(float *dinp, const float *inp, const float *dout, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) *(v16 *)(dinp + i) = DKC_GELU_SLOPE(*(const v16 *)(inp + i)) * *(const v16 *)(dout + i);
    if (i < n) {
        v16 x;
        DKC_TAIL_LOAD(x, inp + i, n - i);
        const v16 s = DKC_GELU_SLOPE(x);
        for (ptrdiff_t j = 0; j < n - i; j++) dinp[i + j] = s[j] * dout[i + j];
    }
}

#define DKC_SIGMOID(x) (1.0f / (1.0f + DKC_EXP16(-(x))))

DKC_CLONES
void dkc_swiglu_forward(float *out, const float *gate, const float *up, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const v16 g = *(const v16 *)(gate + i);
        *(v16 *)(out + i) = g * DKC_SIGMOID(g) * *(const v16 *)(up + i);
    }
    if (i < n) {
        v16 g, u;
        DKC_TAIL_LOAD(g, gate + i, n - i);
        DKC_TAIL_LOAD(u, up + i, n - i);
        const v16 y = g * DKC_SIGMOID(g) * u;
        for (ptrdiff_t j = 0; j < n - i; j++) out[i + j] = y[j];
    }
}

DKC_CLONES
void dkc_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const v16 g = *(const v16 *)(gate + i), d = *(const v16 *)(dout + i), s = DKC_SIGMOID(g);
        *(v16 *)(dgate + i) = d * *(const v16 *)(up + i) * s * (1.0f + g * (1.0f - s));
        *(v16 *)(dup + i) = d * g * s;
    }
    if (i < n) {
        v16 g, d, u;
        DKC_TAIL_LOAD(g, gate + i, n - i);
        DKC_TAIL_LOAD(d, dout + i, n - i);
        DKC_TAIL_LOAD(u, up + i, n - i);
        const v16 s = DKC_SIGMOID(g), dg = d * u * s * (1.0f + g * (1.0f - s)), du = d * g * s;
        for (ptrdiff_t j = 0; j < n - i; j++) { dgate[i + j] = dg[j]; dup[i + j] = du[j]; }
    }
}

DKC_CLONES
void dkc_softmax_row(float *row, ptrdiff_t n) {
    const float m = dkc_row_max(row, n);
    v16 acc = {0};
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const v16 e = DKC_EXP16(*(const v16 *)(row + i) - m);
        *(v16 *)(row + i) = e;
        acc += e;
    }
    float sum = 0;
    for (int j = 0; j < 16; j++) sum += acc[j];
    for (; i < n; i++) { const float e = DKC_EXP1(row[i] - m); row[i] = e; sum += e; }
    const float inv = 1.0f / sum;
    for (i = 0; i < n; i++) row[i] *= inv;
}

const char *dkc_kernels_isa(void) {
#if defined(__x86_64__) && defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "avx512";
    if (__builtin_cpu_supports("x86-64-v3")) return "avx2";
#endif
    return "baseline";
}
