/* The AVX-512 intrinsics of kernels_avx512.c from SIMDe's portable implementation, for the test
 * that compiles that file again on CPUs without avx512f (tests/fakequant_avx512_simde.c; never
 * part of the library). SIMDe 0.7.4 (Debian 12) lacks a few of them; they are written here from
 * Intel's documented semantics, element by element. */
#ifndef MPQ_FQ_AVX512_SIMDE_H
#define MPQ_FQ_AVX512_SIMDE_H

#include <stdint.h>
#include <string.h>

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#ifndef _MM_FROUND_NO_EXC
#define _MM_FROUND_NO_EXC SIMDE_MM_FROUND_NO_EXC
#endif

#ifndef __mmask16
#define __mmask16 simde__mmask16
#endif

/* SIMDe 0.7.4's portable vrndscaleps macro computes its scale 2^M as exp2f(((imm8 >> 4) & 15))
 * without parenthesising imm8, so an immediate written as an expression is misparsed:
 * _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC gives M = (1 | (8 >> 4)) & 15 = 1, i.e. rounding
 * to multiples of 1/2 (floor(0.7) = 0.5) instead of Intel's M = imm8[7:4] = 0 (floor to an
 * integer). A literal 9 works; so does passing the immediate parenthesised. */
#undef _mm512_roundscale_ps
#define _mm512_roundscale_ps(a, imm8) simde_mm512_roundscale_ps((a), (imm8))

/* vpmulld keeps the low 32 bits of each product. SIMDe 0.7.4 multiplies the lanes as int32_t
 * in C, a signed overflow (undefined; UBSan reports it) for the hash constants used here; the
 * same low bits come from an unsigned multiply, which wraps by definition. */
static inline simde__m512i mpq_simde_mm512_mullo_epi32(simde__m512i a, simde__m512i b)
{
    uint32_t x[16], y[16];
    memcpy(x, &a, sizeof x);
    memcpy(y, &b, sizeof y);
    for (int i = 0; i < 16; i++)
        x[i] *= y[i];
    simde__m512i r;
    memcpy(&r, x, sizeof r);
    return r;
}
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32(a, b) mpq_simde_mm512_mullo_epi32((a), (b))

/* vcvtdq2ps: each signed 32-bit integer to float, rounded by MXCSR (nearest-even by default),
 * which is C's int-to-float conversion under the default floating-point environment. */
static inline simde__m512 mpq_simde_mm512_cvtepi32_ps(simde__m512i a)
{
    int32_t in[16];
    float out[16];
    memcpy(in, &a, sizeof in);
    for (int i = 0; i < 16; i++)
        out[i] = (float)in[i];
    simde__m512 r;
    memcpy(&r, out, sizeof r);
    return r;
}
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps(a) mpq_simde_mm512_cvtepi32_ps(a)

/* vmovntps: a store to a 64-byte aligned address (misalignment faults). The cache hint has no
 * emulation; misalignment writes NaNs instead of faulting, so the bit-identity checks catch a
 * wrong alignment prologue. */
static inline void mpq_simde_mm512_stream_ps(float *p, simde__m512 a)
{
    if (((uintptr_t)p & 63u) != 0)
        a = simde_mm512_set1_ps(SIMDE_MATH_NANF);
    memcpy(p, &a, sizeof a);
}
#undef _mm512_stream_ps
#define _mm512_stream_ps(p, a) mpq_simde_mm512_stream_ps((p), (a))

#endif /* MPQ_FQ_AVX512_SIMDE_H */
