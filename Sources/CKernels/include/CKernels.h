// Inner loops that want the machine's full vector width: compiled once per x86-64 level (AVX-512, AVX2 + FMA, the
// baseline) and picked when the program loads, so one binary runs everywhere and uses what the CPU has.
#ifndef DKC_CKERNELS_H
#define DKC_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// dst[i] = start[i] + Σ_{t < terms} coefficients[t] · sources[indices[t] · stride + i] for i < count. The sum over
/// the terms is formed first (two interleaved partial sums, even and odd terms, added at the end) and added to
/// start[i] last. `dst` may equal `start`.
void dkc_weighted_sum(float *dst, const float *start, const float *sources, ptrdiff_t stride, const int32_t *indices,
                      const float *coefficients, ptrdiff_t terms, ptrdiff_t count);

/// total[i] = base[i] + Σ_{f < rows} sources[f · stride + i] for i < count, summed in row order.
void dkc_sum_rows(float *total, const float *base, const float *sources, ptrdiff_t stride, ptrdiff_t rows, ptrdiff_t count);

/// The largest of row[0..<n] (n ≥ 1).
float dkc_row_max(const float *row, ptrdiff_t n);

/// Σ exp(row[i] − m) over i < n, the exponentials in float (the same range reduction and polynomial as the Swift
/// `FastMath.exp`) and their sum in double; with `out`, also out[i] = exp(row[i] − m) (`out` may equal `row`).
double dkc_exp_sum(float *out, const float *row, ptrdiff_t n, float m);

/// out[i] = exp(row[i] − m) · k for i < n (`out` may equal `row`).
void dkc_exp_scale(float *out, const float *row, ptrdiff_t n, float m, float k);

/// row[i] *= k for i < n.
void dkc_scale(float *row, ptrdiff_t n, float k);

/// GELU, tanh form, as x·σ(2u), u = √(2/π)(x + 0.044715x³): out[i] = gelu(inp[i]) for i < n (`out` may equal `inp`).
void dkc_gelu_forward(float *out, const float *inp, ptrdiff_t n);

/// pre[i] += bias[i], then out[i] = gelu(pre[i]) for i < n (one row of a linear layer's output).
void dkc_gelu_bias_forward(float *out, float *pre, const float *bias, ptrdiff_t n);

/// dinp[i] = gelu'(inp[i]) · dout[i] for i < n (`dinp` may equal `dout`).
void dkc_gelu_backward(float *dinp, const float *inp, const float *dout, ptrdiff_t n);

/// Llama's gated activation: out[i] = silu(gate[i]) · up[i], silu(g) = g · σ(g), for i < n.
void dkc_swiglu_forward(float *out, const float *gate, const float *up, ptrdiff_t n);

/// dgate[i] = dout[i] · up[i] · silu'(gate[i]) and dup[i] = dout[i] · silu(gate[i]), silu'(g) = σ(g)(1 + g(1 − σ(g))),
/// for i < n (`dup` may equal `dout`; `dgate` may not).
void dkc_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, ptrdiff_t n);

/// In-place softmax of row[0..<n] (n ≥ 1), the sum in float.
void dkc_softmax_row(float *row, ptrdiff_t n);

/// The instruction set the loaded clones use: "avx512", "avx2" or "baseline".
const char *dkc_kernels_isa(void);
#endif
