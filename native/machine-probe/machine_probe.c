// SPDX-License-Identifier: Apache-2.0
/*
 * profinfer-machine-probe: what this machine's memory and cores can do, the ceilings the roofline
 * of docs/findings.md measures operators against. Prints one JSON object:
 *
 *   bandwidth: a STREAM-style read kernel (each thread sums its slice of one buffer several times
 *     the last-level cache, vector loads, threads released together by a barrier, the time from
 *     the first reader's start to the last one's end, the best of PI_REPEATS passes after a warm-up
 *     pass),
 *     for 1..N threads;
 *   f32Fma: fused multiply-adds on one thread, PI_ACCUMULATORS independent vector accumulators
 *     held in registers (no loads), 2 flops per lane and instruction;
 *   int8Dot: the int8 dot-product instructions ggml's quantised matmuls use on this ISA (VNNI
 *     vpdpbusd, else vpmaddubsw + vpmaddwd, NEON sdot, else scalar), in registers, 2 operations
 *     (a multiply and an add) per int8 product.
 *
 * Written here because no packaged tool measures these three the way ggml's kernels run: STREAM
 * and sysbench measure bandwidth only, and neither is a library profinfer can link.
 *
 * Usage: profinfer-machine-probe [--threads N] [--buffer-bytes B] [--quick]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#define PI_MACHINE_ABI 1
#define PI_REPEATS 10
#define PI_MAX_THREADS 1024
/* Each arithmetic measurement runs about this long, the best of three taken. */
#define PI_COMPUTE_NS 150000000ull

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    printf("{\"abi\":%d,\"error\":\"%s: %s\"}\n", PI_MACHINE_ABI, what, strerror(errno));
    exit(1);
}

/* ---- memory bandwidth ---------------------------------------------------------------------- */

typedef uint64_t pi_u64x8 __attribute__((vector_size(64), aligned(64)));

struct pi_read_pool {
    const unsigned char *buffer;
    size_t bytes;
    int threads;
    pthread_barrier_t start, end;
    uint64_t sink[PI_MAX_THREADS];
    /* each reader's own start and end of the current pass: the main thread, which may be off its
     * CPU when the readers are released, does not time them */
    uint64_t began[PI_MAX_THREADS], ended[PI_MAX_THREADS];
};

struct pi_read_arg {
    struct pi_read_pool *pool;
    int index;
    int cpu;
};

/* Sum one slice with four independent vector accumulators: loads, not additions, are the limit. */
static uint64_t read_slice(const unsigned char *from, size_t bytes)
{
    const pi_u64x8 *p = (const pi_u64x8 *)from;
    size_t n = bytes / sizeof(pi_u64x8);
    pi_u64x8 a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    for (; i < n; i++) {
        a += p[i];
    }
    pi_u64x8 s = a + b + c + d;
    uint64_t out = 0;
    for (int l = 0; l < 8; l++) {
        out += s[l];
    }
    return out;
}

static void slice_of(const struct pi_read_pool *pool, int index, size_t *offset, size_t *bytes)
{
    size_t per = pool->bytes / (size_t)pool->threads / sizeof(pi_u64x8) * sizeof(pi_u64x8);
    *offset = per * (size_t)index;
    *bytes = per;
}

static void *read_worker(void *p)
{
    struct pi_read_arg *arg = p;
    struct pi_read_pool *pool = arg->pool;
    if (arg->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(arg->cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    size_t offset, bytes;
    slice_of(pool, arg->index, &offset, &bytes);
    for (int pass = 0; pass <= PI_REPEATS; pass++) {
        pthread_barrier_wait(&pool->start);
        pool->began[arg->index] = now_ns();
        pool->sink[arg->index] += read_slice(pool->buffer + offset, bytes);
        pool->ended[arg->index] = now_ns();
        pthread_barrier_wait(&pool->end);
    }
    return NULL;
}

/* Bytes per second `threads` threads read, the best pass: from the first start to the last end. */
static double measure_read(const unsigned char *buffer, size_t bytes, int threads, const int *cpus, int ncpus)
{
    struct pi_read_pool pool = { .buffer = buffer, .bytes = bytes, .threads = threads };
    pthread_barrier_init(&pool.start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&pool.end, NULL, (unsigned)threads + 1);
    pthread_t tid[PI_MAX_THREADS];
    struct pi_read_arg args[PI_MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        args[i] = (struct pi_read_arg){ .pool = &pool, .index = i, .cpu = ncpus > 0 ? cpus[i % ncpus] : -1 };
        if (pthread_create(&tid[i], NULL, read_worker, &args[i]) != 0) {
            die("pthread_create");
        }
    }
    double best = 0;
    size_t per_thread;
    size_t offset;
    slice_of(&pool, 0, &offset, &per_thread);
    double moved = (double)per_thread * threads;
    for (int pass = 0; pass <= PI_REPEATS; pass++) {
        pthread_barrier_wait(&pool.start);
        pthread_barrier_wait(&pool.end);
        uint64_t first = UINT64_MAX, last = 0;
        for (int i = 0; i < threads; i++) {
            first = pool.began[i] < first ? pool.began[i] : first;
            last = pool.ended[i] > last ? pool.ended[i] : last;
        }
        uint64_t dt = last - first;
        /* the first pass warms the page tables and the TLB, as STREAM drops its first trial */
        if (pass > 0 && dt > 0 && moved / ((double)dt / 1e9) > best) {
            best = moved / ((double)dt / 1e9);
        }
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
    }
    pthread_barrier_destroy(&pool.start);
    pthread_barrier_destroy(&pool.end);
    return best;
}

/* ---- arithmetic ---------------------------------------------------------------------------- */

#if defined(__AVX512F__)
#define PI_F32_LANES 16
#define PI_F32_ISA "avx512f"
#elif defined(__AVX__)
#define PI_F32_LANES 8
#define PI_F32_ISA "avx"
#else
#define PI_F32_LANES 4
#define PI_F32_ISA "128-bit vectors"
#endif
typedef float pi_f32v __attribute__((vector_size(PI_F32_LANES * 4)));

/* Inputs the compiler cannot see through, so that the loops are not folded away. */
static volatile float g_f32_seed = 1.0000001f;
static volatile int8_t g_i8_seed = 3;
static volatile uint64_t g_sink;

/* Apply STEP to each of PI_ACCUMULATORS named accumulators: named, so that they stay in registers. */
#define PI_EACH(STEP)                                                                                               \
    STEP(a0);                                                                                                       \
    STEP(a1);                                                                                                       \
    STEP(a2);                                                                                                       \
    STEP(a3);                                                                                                       \
    STEP(a4);                                                                                                       \
    STEP(a5);                                                                                                       \
    STEP(a6);                                                                                                       \
    STEP(a7);                                                                                                       \
    STEP(a8);                                                                                                       \
    STEP(a9);                                                                                                       \
    STEP(a10);                                                                                                      \
    STEP(a11)
#define PI_ACCUMULATORS 12

/*
 * Runs STEP on every accumulator, 1024 times a round, for PI_COMPUTE_NS; sets `iterations` and the
 * seconds it took. A macro, not a function: the accumulators must stay in the caller's registers.
 */
#define PI_TIMED_ROUNDS(STEP, iterations, seconds)                                                                 \
    do {                                                                                                            \
        uint64_t t0_ = now_ns(), t1_;                                                                               \
        (iterations) = 0;                                                                                           \
        do {                                                                                                        \
            for (int rep_ = 0; rep_ < 1024; rep_++) {                                                               \
                PI_EACH(STEP);                                                                                      \
            }                                                                                                       \
            (iterations) += 1024;                                                                                   \
            t1_ = now_ns();                                                                                         \
        } while (t1_ - t0_ < PI_COMPUTE_NS);                                                                        \
        (seconds) = (double)(t1_ - t0_) / 1e9;                                                                      \
    } while (0)

/* f32 flops per second on one thread: PI_ACCUMULATORS chains of a = a * m + c. */
static double measure_f32_fma(void)
{
    double best = 0;
    for (int trial = 0; trial < 3; trial++) {
        pi_f32v m, c;
        for (int l = 0; l < PI_F32_LANES; l++) {
            m[l] = g_f32_seed;
            c[l] = g_f32_seed * 1e-7f;
        }
        pi_f32v a0 = c, a1 = c * 2, a2 = c * 3, a3 = c * 4, a4 = c * 5, a5 = c * 6, a6 = c * 7, a7 = c * 8,
                a8 = c * 9, a9 = c * 10, a10 = c * 11, a11 = c * 12;
#define PI_FMA(a) (a) = (a) * m + c
        uint64_t iterations;
        double seconds;
        PI_TIMED_ROUNDS(PI_FMA, iterations, seconds);
        pi_f32v sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
        float s = 0;
        for (int l = 0; l < PI_F32_LANES; l++) {
            s += sum[l];
        }
        g_sink += (uint64_t)s;
        double rate = (double)iterations * PI_ACCUMULATORS * PI_F32_LANES * 2 / seconds;
        if (rate > best) {
            best = rate;
        }
    }
    return best;
}

/* One step of int8 dot products on every accumulator: the instructions ggml's q8 dot uses. */
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define PI_I8_ISA "avx512_vnni vpdpbusd"
#define PI_I8_PRODUCTS 64
typedef __m512i pi_i32acc;
#define PI_I8_SETUP()                                                                                               \
    __m512i u = _mm512_set1_epi8((char)g_i8_seed), v = _mm512_set1_epi8((char)(g_i8_seed + 1));
#define PI_I8_INIT(k) _mm512_set1_epi32(k)
#define PI_I8_STEP(acc) (acc) = _mm512_dpbusd_epi32((acc), u, v)
#define PI_I8_LANE_SUM(acc) (uint64_t)_mm512_reduce_add_epi32(acc)
#elif defined(__AVX512BW__)
#define PI_I8_ISA "avx512bw vpmaddubsw+vpmaddwd"
#define PI_I8_PRODUCTS 64
typedef __m512i pi_i32acc;
#define PI_I8_SETUP()                                                                                               \
    __m512i u = _mm512_set1_epi8((char)g_i8_seed), v = _mm512_set1_epi8((char)(g_i8_seed + 1));                    \
    __m512i ones = _mm512_set1_epi16(1);
#define PI_I8_INIT(k) _mm512_set1_epi32(k)
#define PI_I8_STEP(acc) (acc) = _mm512_add_epi32((acc), _mm512_madd_epi16(_mm512_maddubs_epi16(u, v), ones))
#define PI_I8_LANE_SUM(acc) (uint64_t)_mm512_reduce_add_epi32(acc)
#elif defined(__AVX2__)
#define PI_I8_ISA "avx2 vpmaddubsw+vpmaddwd"
#define PI_I8_PRODUCTS 32
typedef __m256i pi_i32acc;
#define PI_I8_SETUP()                                                                                               \
    __m256i u = _mm256_set1_epi8((char)g_i8_seed), v = _mm256_set1_epi8((char)(g_i8_seed + 1));                    \
    __m256i ones = _mm256_set1_epi16(1);
#define PI_I8_INIT(k) _mm256_set1_epi32(k)
#define PI_I8_STEP(acc) (acc) = _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16(u, v), ones))
#define PI_I8_LANE_SUM(acc) (uint64_t)_mm256_extract_epi32(acc, 0)
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#define PI_I8_ISA "neon sdot"
#define PI_I8_PRODUCTS 16
typedef int32x4_t pi_i32acc;
#define PI_I8_SETUP() int8x16_t u = vdupq_n_s8(g_i8_seed), v = vdupq_n_s8((int8_t)(g_i8_seed + 1));
#define PI_I8_INIT(k) vdupq_n_s32(k)
#define PI_I8_STEP(acc) (acc) = vdotq_s32((acc), u, v)
#define PI_I8_LANE_SUM(acc) (uint64_t)vaddvq_s32(acc)
#else
#define PI_I8_ISA "scalar"
#define PI_I8_PRODUCTS 1
typedef int32_t pi_i32acc;
#define PI_I8_SETUP() int8_t u = g_i8_seed, v = (int8_t)(g_i8_seed + 1);
#define PI_I8_INIT(k) (k)
/* the empty asm makes u opaque on every step, or the loop-invariant product would be hoisted */
#define PI_I8_STEP(acc)                                                                                             \
    do {                                                                                                            \
        __asm__ volatile("" : "+r"(u));                                                                             \
        (acc) += (int32_t)u * (int32_t)v;                                                                           \
    } while (0)
#define PI_I8_LANE_SUM(acc) (uint64_t)(acc)
#endif

/* int8 operations per second on one thread (a product and its addition: 2). */
static double measure_int8_dot(void)
{
    double best = 0;
    for (int trial = 0; trial < 3; trial++) {
        PI_I8_SETUP();
        /* distinct starting values: identical chains would be merged into one by the compiler */
        pi_i32acc a0 = PI_I8_INIT(1), a1 = PI_I8_INIT(2), a2 = PI_I8_INIT(3), a3 = PI_I8_INIT(4), a4 = PI_I8_INIT(5),
                  a5 = PI_I8_INIT(6), a6 = PI_I8_INIT(7), a7 = PI_I8_INIT(8), a8 = PI_I8_INIT(9), a9 = PI_I8_INIT(10),
                  a10 = PI_I8_INIT(11), a11 = PI_I8_INIT(12);
        uint64_t iterations;
        double seconds;
        PI_TIMED_ROUNDS(PI_I8_STEP, iterations, seconds);
#define PI_I8_SINK(a) g_sink += PI_I8_LANE_SUM(a)
        PI_EACH(PI_I8_SINK);
        double rate = (double)iterations * PI_ACCUMULATORS * PI_I8_PRODUCTS * 2 / seconds;
        if (rate > best) {
            best = rate;
        }
    }
    return best;
}

/* ---- main ---------------------------------------------------------------------------------- */

/* The thread counts measured: each one up to 16, then powers of two and the CPU count. */
static int thread_counts(int max, int *out)
{
    int n = 0;
    for (int t = 1; t <= max; t++) {
        if (t <= 16 || (t & (t - 1)) == 0 || t == max) {
            out[n++] = t;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    cpu_set_t allowed;
    int cpus[PI_MAX_THREADS];
    int ncpus = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
        for (int c = 0; c < CPU_SETSIZE && ncpus < PI_MAX_THREADS; c++) {
            if (CPU_ISSET(c, &allowed)) {
                cpus[ncpus++] = c;
            }
        }
    }
    int max_threads = ncpus > 0 ? ncpus : 1;
    size_t buffer_bytes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            max_threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--buffer-bytes") == 0 && i + 1 < argc) {
            buffer_bytes = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--buffer-bytes B]\n", argv[0]);
            return 2;
        }
    }
    if (max_threads < 1 || max_threads > PI_MAX_THREADS) {
        fprintf(stderr, "--threads must be 1..%d\n", PI_MAX_THREADS);
        return 2;
    }
    if (buffer_bytes == 0) {
        buffer_bytes = 1ull << 30;
    }
    uint64_t began = now_ns();

    /* One buffer for every thread count, touched first by its readers' CPUs (NUMA first touch). */
    unsigned char *buffer = mmap(NULL, buffer_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buffer == MAP_FAILED) {
        die("mmap of the bandwidth buffer");
    }
    madvise(buffer, buffer_bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < buffer_bytes; i += 4096) {
        buffer[i] = (unsigned char)i;
    }
    int counts[PI_MAX_THREADS];
    int n_counts = thread_counts(max_threads, counts);
    double bandwidth[PI_MAX_THREADS];
    for (int i = 0; i < n_counts; i++) {
        bandwidth[i] = measure_read(buffer, buffer_bytes, counts[i], cpus, ncpus);
    }
    munmap(buffer, buffer_bytes);

    double f32 = measure_f32_fma();
    double i8 = measure_int8_dot();

    printf("{\"abi\":%d,\"bandwidth\":{\"bufferBytes\":%zu,\"repeats\":%d,\"points\":[", PI_MACHINE_ABI, buffer_bytes,
           PI_REPEATS);
    for (int i = 0; i < n_counts; i++) {
        printf("%s{\"threads\":%d,\"bytesPerSecond\":%.0f}", i ? "," : "", counts[i], bandwidth[i]);
    }
    printf("]},\"f32Fma\":{\"isa\":\"%s\",\"lanes\":%d,\"perThread\":%.0f},", PI_F32_ISA, PI_F32_LANES, f32);
    printf("\"int8Dot\":{\"isa\":\"%s\",\"perThread\":%.0f},", PI_I8_ISA, i8);
    printf("\"seconds\":%.3f}\n", (double)(now_ns() - began) / 1e9);
    return g_sink == 42 ? 0 : 0;
}
