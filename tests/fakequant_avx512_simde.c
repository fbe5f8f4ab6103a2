/* lib/fakequant/x86/kernels_avx512.c compiled a second time against SIMDe's portable AVX-512
 * intrinsics, its entry point renamed: test-fakequant-simde checks it against the scalar
 * reference on CPUs without avx512f. */
#define MPQ_FQ_SIMDE 1
#define mpq__fq_kernels_avx512 mpq__fq_kernels_avx512_simde

#include "x86/kernels_avx512.c"
