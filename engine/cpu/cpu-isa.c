/* cpu-isa.c — the vector instruction set the CPU kernels use, chosen once:
 * the best this CPU has, or at most what SETOK_CPU_ISA names ("c", "avx2",
 * "avx512", "avx512vnni", "avx512bf16"), so that tests and comparisons can run every path
 * on one machine. */
#include "setok-config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static setok_cpu_isa level;

static void choose(void)
{
    const char *cap = getenv("SETOK_CPU_ISA");
    setok_cpu_isa most = !cap || !strcmp(cap, "avx512bf16") ? SETOK_ISA_AVX512_BF16
                         : !strcmp(cap, "avx512vnni")       ? SETOK_ISA_AVX512_VNNI
                         : !strcmp(cap, "avx512")           ? SETOK_ISA_AVX512
                         : !strcmp(cap, "avx2")             ? SETOK_ISA_AVX2
                                                            : SETOK_ISA_C;
    level = SETOK_ISA_C;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* F16C by cpuid: not every compiler's __builtin_cpu_supports knows it */
    unsigned a = 0, b = 0, c = 0, d = 0;
    bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    bool avx2 = __builtin_cpu_supports("avx2") && f16c && __builtin_cpu_supports("fma");
    bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    bool vnni = avx512 && __builtin_cpu_supports("avx512vnni");
    if (vnni && __builtin_cpu_supports("avx512bf16"))
        level = SETOK_ISA_AVX512_BF16;
    else if (vnni)
        level = SETOK_ISA_AVX512_VNNI;
    else if (avx512)
        level = SETOK_ISA_AVX512;
    else if (avx2)
        level = SETOK_ISA_AVX2;
#endif
    if (level > most)
        level = most;
}

setok_cpu_isa setok_cpu_isa_level(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose);
    return level;
}
