/* Makes a process see an older x86-64 CPU than the one it runs on: AVX only
 * (CPUID_MASK=avx), AVX2 + FMA only (CPUID_MASK=avx2) or AVX-512 without VNNI, bf16 and
 * AMX (CPUID_MASK=avx512).
 *
 * Why: the environment caps (ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS,
 * --xla_cpu_max_isa) do not reach every library. XLA hands dots to YNNPACK, which picks
 * its kernels from CPUID at run time and ignores --xla_cpu_max_isa: under that cap a
 * [6304, 192] x [192, 768] dot still ran `ynn::dot_fp32_..._avx512f` at 310 GFLOP/s on
 * two cores, above what AVX2 can do there (oneDNN capped at AVX2: 198).
 *
 * How: Linux's CPUID faulting (arch_prctl(ARCH_SET_CPUID, 0), CPUs with the `cpuid_fault`
 * flag; inherited by every thread the process creates). Each CPUID instruction then
 * raises SIGSEGV; the handler below runs the real CPUID, clears the feature bits the
 * emulated CPU lacks, writes the result into the interrupted registers and steps over
 * the instruction. Other SIGSEGVs go to whatever
 * handler the program installed (sigaction / signal are wrapped so that a later handler,
 * e.g. Python's faulthandler, is chained instead of replacing this one).
 *
 * Loaded with LD_PRELOAD by benchmarks/cpu_emulation/run.py; benchmarks only.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction chained; /* the program's own SIGSEGV handler, if any */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

/* CPUID_MASK=avx2: an AVX2 + FMA CPU (Haswell to Alder Lake client, Zen 1-3): no
 * AVX-512, AMX, VNNI, bf16. CPUID_MASK=avx512: a Skylake-SP server (AVX-512 F/CD/BW/DQ/VL
 * only): no VNNI, VBMI, bf16, fp16, AMX. */
static int keep_avx512;
static int avx_only; /* CPUID_MASK=avx: Sandy Bridge (AVX; no AVX2, FMA, F16C, BMI) */

static void mask(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
  /* r = {eax, ebx, ecx, edx} */
  if (leaf == 1 && avx_only) {
    /* ECX: fma 12, movbe 22, f16c 29 */
    r[2] &= ~((1u << 12) | (1u << 22) | (1u << 29));
  } else if (leaf == 7 && subleaf == 0) {
    /* EBX: bmi1 3, avx2 5, bmi2 8 (AVX-only CPUs) */
    if (avx_only) r[1] &= ~((1u << 3) | (1u << 5) | (1u << 8));
    /* EBX: avx512f 16, dq 17, ifma 21, pf 26, er 27, cd 28, bw 30, vl 31 */
    uint32_t skylake = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
    r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
              (1u << 30) | (1u << 31)) | (keep_avx512 ? skylake : 0);
    /* ECX: vbmi 1, vbmi2 6, vnni 11, bitalg 12, vpopcntdq 14 */
    r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    /* EDX: 4vnniw 2, 4fmaps 3, vp2intersect 8, amx_bf16 22, fp16 23, amx_tile 24, amx_int8 25 */
    r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
              (1u << 25));
  } else if (leaf == 7 && subleaf == 1) {
    /* EAX: avx_vnni 4, avx512_bf16 5, amx_fp16 21, avx_ifma 23; EDX: avx_vnni_int8 4, avx10 19 */
    r[0] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
    r[3] &= ~((1u << 4) | (1u << 19));
  } else if (leaf == 0xD && subleaf == 0) {
    /* XSAVE components 5-7 (opmask, ZMM) and 17-18 (AMX tiles) */
    r[0] &= ~((keep_avx512 ? 0u : (7u << 5)) | (3u << 17));
  } else if (leaf == 0x1D || leaf == 0x1E || leaf == 0x24) {
    /* AMX palette / TMUL information, AVX10 */
    r[0] = r[1] = r[2] = r[3] = 0;
  }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = (ucontext_t *)context;
  const unsigned char *ip = (const unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
  if (ip[0] == 0x0F && ip[1] == 0xA2) {
    uint32_t leaf = (uint32_t)uc->uc_mcontext.gregs[REG_RAX];
    uint32_t subleaf = (uint32_t)uc->uc_mcontext.gregs[REG_RCX];
    uint32_t r[4];
    set_cpuid(1);
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(subleaf));
    set_cpuid(0);
    mask(leaf, subleaf, r);
    uc->uc_mcontext.gregs[REG_RAX] = r[0];
    uc->uc_mcontext.gregs[REG_RBX] = r[1];
    uc->uc_mcontext.gregs[REG_RCX] = r[2];
    uc->uc_mcontext.gregs[REG_RDX] = r[3];
    uc->uc_mcontext.gregs[REG_RIP] += 2;
    return;
  }
  if (chained.sa_flags & SA_SIGINFO) {
    chained.sa_sigaction(sig, info, context);
  } else if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN) {
    chained.sa_handler(sig);
  } else {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL); /* the fault repeats and ends the process as usual */
  }
}

int sigaction(int signum, const struct sigaction *act, struct sigaction *oldact) {
  if (!real_sigaction) real_sigaction = dlsym(RTLD_NEXT, "sigaction");
  if (signum != SIGSEGV) return real_sigaction(signum, act, oldact);
  if (oldact) *oldact = chained;
  if (act) chained = *act;
  return 0;
}

sighandler_t signal(int signum, sighandler_t handler) {
  if (signum != SIGSEGV) {
    sighandler_t (*real_signal)(int, sighandler_t) = dlsym(RTLD_NEXT, "signal");
    return real_signal(signum, handler);
  }
  sighandler_t old = chained.sa_handler;
  memset(&chained, 0, sizeof chained);
  chained.sa_handler = handler;
  return old;
}

__attribute__((constructor)) static void install(void) {
  real_sigaction = dlsym(RTLD_NEXT, "sigaction");
  const char *level = getenv("CPUID_MASK");
  keep_avx512 = level && strcmp(level, "avx512") == 0;
  avx_only = level && strcmp(level, "avx") == 0;
  struct sigaction own;
  memset(&own, 0, sizeof own);
  own.sa_sigaction = on_segv;
  own.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&own.sa_mask);
  /* run.py checks the cpuid_fault flag first; a child that cannot fault (a program run
   * under QEMU's user-mode emulator, which has a CPUID of its own) runs unmasked. */
  struct sigaction previous;
  real_sigaction(SIGSEGV, &own, &previous);
  if (set_cpuid(0) != 0) {
    real_sigaction(SIGSEGV, &previous, NULL);
    fprintf(stderr, "cpuid_mask: no CPUID faulting here; this process is not masked\n");
  }
}
