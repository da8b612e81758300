// SPDX-License-Identifier: Apache-2.0
/*
 * ggml-layout-probe: resolve, for one exact ggml build, the struct offsets and enum tables that the
 * eBPF tracer needs, by observation through the library's API only.
 *
 *   ggml-layout-probe /path/to/libggml-base.so [/path/to/libggml-cpu.so]
 *   ggml-layout-probe /path/to/llama-executable /path/to/llama-executable
 *
 * The second form is a build with ggml linked into the executable (BUILD_SHARED_LIBS=OFF): its
 * API is found in its symbol table and called in a loaded copy (executable.c).
 *
 * Prints one JSON object on stdout. Every offset is found by building tensors and graphs with
 * distinctive values and scanning their raw bytes, then cross-checked; nothing is taken from a
 * header of one ggml version.
 *
 * Exit status: 0 resolved; 1 usage, load failure or a CPU variant this machine cannot run;
 * 2 a required symbol is missing (not a ggml library, or too old); 3 a field or table could not be
 * resolved unambiguously (or the library crashed while being probed). Errors are JSON
 * objects {"error": "..."} on stdout too.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executable.h"

#define PI_EXIT_LOAD 1
#define PI_EXIT_SYMBOL 2
#define PI_EXIT_LAYOUT 3

#define PI_ABI 1
#define PI_MAX_TENSOR_SCAN 4096
#define PI_FALLBACK_TENSOR_SCAN 512
#define PI_GRAPH_SCAN 256
#define PI_MAX_CANDIDATES 16
#define PI_MAX_TABLE 1024
#define PI_NAME_CAP 128
#define PI_CTX_BYTES (16u << 20)
#define PI_LONG_NAME_LEN 1023
#define PI_CPLAN_MIRROR_BYTES 256
#define PI_TYPE_CTX_BYTES (2u << 20)
#define PI_TYPE_PROBE_ELEMENTS (256 * 3 * 5 * 7)

/* Public ABI mirrors (ggml.h, ggml-cpu.h, ggml-cpu-impl.h): stable, passed by value or to callbacks. */
struct pi_init_params {
    size_t mem_size;
    void *mem_buffer;
    bool no_alloc;
};

struct pi_compute_params {
    int ith, nth;
    size_t wsize;
    void *wdata;
};

/* Generous stand-in for struct ggml_cplan: returned by value through a hidden pointer either way. */
union pi_cplan_mirror {
    struct {
        size_t work_size;
        uint8_t *work_data;
        int n_threads;
    } documented;
    unsigned char bytes[PI_CPLAN_MIRROR_BYTES];
};

typedef const char *(*pi_name_fn)(int);
typedef void (*pi_abort_callback)(const char *message);

struct pi_api {
    void *(*init)(struct pi_init_params);
    void (*free)(void *ctx);
    void *(*get_mem_buffer)(const void *ctx);
    size_t (*tensor_overhead)(void);
    size_t (*graph_overhead)(void);
    void *(*new_tensor_1d)(void *ctx, int type, int64_t ne0);
    void *(*new_tensor_4d)(void *ctx, int type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3);
    void *(*set_name)(void *t, const char *name);
    const char *(*get_name)(const void *t);
    void *(*get_data)(const void *t);
    size_t (*nbytes)(const void *t);
    void (*set_input)(void *t);
    void (*set_output)(void *t);
    void *(*add)(void *ctx, void *a, void *b);
    void *(*mul_mat)(void *ctx, void *a, void *b);
    void *(*mul_mat_id)(void *ctx, void *as, void *b, void *ids);
    void *(*scale)(void *ctx, void *a, float s);
    void *(*view_1d)(void *ctx, void *a, int64_t ne0, size_t offset);
    void *(*new_graph)(void *ctx);
    void (*build_forward_expand)(void *graph, void *t);
    int (*graph_n_nodes)(void *graph);
    void *(*graph_node)(void *graph, int i);
    pi_name_fn op_name;
    pi_name_fn op_symbol;
    pi_name_fn unary_op_name;
    pi_name_fn glu_op_name;
    pi_name_fn type_name;
    size_t (*type_size)(int type);
    int64_t (*blck_size)(int type);
    pi_abort_callback (*set_abort_callback)(pi_abort_callback callback);
    const char *(*version)(void);
    const char *(*commit)(void);
};

struct pi_cpu_api {
    union pi_cplan_mirror (*graph_plan)(const void *graph, int n_threads, void *threadpool);
    int (*backend_score)(void);
    void (*cpu_init)(void);
};

struct pi_symbol {
    const char *name;
    void **slot;
    bool required;
};

struct pi_table {
    size_t n;
    char name[PI_MAX_TABLE][PI_NAME_CAP];
};

struct pi_candidates {
    size_t n;
    size_t off[PI_MAX_CANDIDATES];
};

struct pi_tensor_layout {
    size_t type, ne, nb, op, op_params, flags, src, view_src, view_offs, data, name;
    size_t max_src, max_name, max_op_params;
    long size; /* -1 when it could not be derived */
};

struct pi_field {
    const char *name;
    size_t off, len;
};

static sigjmp_buf g_fault_jmp;
static volatile sig_atomic_t g_fault_armed;
static volatile sig_atomic_t g_last_fault;
static const char *volatile g_stage = "startup";

/* A library that is not what it claims may still fault: answer in JSON rather than dump core. */
static void on_fatal_signal(int sig)
{
    if (g_fault_armed) {
        g_last_fault = sig;
        siglongjmp(g_fault_jmp, sig);
    }
    static const char head[] = "{\"error\":\"the library crashed (signal ";
    static const char mid[] = ") while probing ";
    static const char tail[] = "; it is probably not a ggml build this probe understands\"}\n";
    char num[12];
    int n = 0;
    for (int v = sig; v > 0 && n < 11; v /= 10) {
        num[n++] = (char)('0' + v % 10);
    }
    (void)!write(STDOUT_FILENO, head, sizeof head - 1);
    while (n > 0) {
        (void)!write(STDOUT_FILENO, &num[--n], 1);
    }
    (void)!write(STDOUT_FILENO, mid, sizeof mid - 1);
    (void)!write(STDOUT_FILENO, g_stage, strlen(g_stage));
    (void)!write(STDOUT_FILENO, tail, sizeof tail - 1);
    _exit(PI_EXIT_LAYOUT);
}

static void install_fault_handlers(void)
{
    static const int signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        sigaction(signals[i], &sa, NULL);
    }
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20 || *p >= 0x7f) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

static _Noreturn void fail(int status, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fputs("{\"error\":", stdout);
    json_string(stdout, msg);
    fputs("}\n", stdout);
    fflush(stdout);
    exit(status);
}

/* A loaded ggml: a shared library as it is, or a PIE with ggml linked in (executable.c). */
struct pi_module {
    const char *path;
    void *handle;
    /* an executable's functions are found in its .symtab, at this load bias */
    bool executable;
    uintptr_t bias;
};

static _Noreturn void fail_missing_symbols(const struct pi_module *module, bool has_symtab, const char *missing,
                                           const char *first)
{
    char msg[2048];
    if (module->executable && !has_symtab) {
        snprintf(msg, sizeof msg,
                 "%s has no symbol table (it was stripped), where ggml's functions are found in an "
                 "executable; keep it (strip --strip-debug does) or use a build that is not stripped",
                 module->path);
    } else if (module->executable) {
        snprintf(msg, sizeof msg,
                 "the symbol table of %s does not define %s: symbols were removed from it, or it is "
                 "not a llama.cpp executable with ggml linked in",
                 module->path, missing);
    } else {
        snprintf(msg, sizeof msg,
                 "%s does not export %s: it is not a ggml library, or a ggml too old for this probe; "
                 "pass the libggml-base.so (or libggml-cpu*.so) the target process maps",
                 module->path, missing);
    }
    fputs("{\"error\":", stdout);
    json_string(stdout, msg);
    fputs(",\"missingSymbol\":", stdout);
    json_string(stdout, first);
    fputs("}\n", stdout);
    fflush(stdout);
    exit(PI_EXIT_SYMBOL);
}

#define PI_MAX_SYMBOLS 64

/* Resolve every symbol first so one run names all that are missing. */
static void resolve_symbols(const struct pi_module *module, const struct pi_symbol *symbols, size_t n)
{
    const char *names[PI_MAX_SYMBOLS];
    uintptr_t values[PI_MAX_SYMBOLS] = { 0 };
    if (n > PI_MAX_SYMBOLS) {
        fail(PI_EXIT_SYMBOL, "%zu symbols asked for at once, at most %d", n, PI_MAX_SYMBOLS);
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = symbols[i].name;
    }
    /* an executable exports nothing of ggml; dlsym would find a dependency's symbol of that name */
    bool has_symtab = module->executable && pi_symtab_functions(module->path, names, n, values) >= 0;
    char missing[1024] = "";
    const char *first = NULL;
    for (size_t i = 0; i < n; i++) {
        *symbols[i].slot = module->executable ? (values[i] ? (void *)(module->bias + values[i]) : NULL)
                                              : dlsym(module->handle, symbols[i].name);
        if (*symbols[i].slot == NULL && symbols[i].required) {
            if (first == NULL) {
                first = symbols[i].name;
            } else {
                strncat(missing, ", ", sizeof missing - strlen(missing) - 1);
            }
            strncat(missing, symbols[i].name, sizeof missing - strlen(missing) - 1);
        }
    }
    if (first != NULL) {
        fail_missing_symbols(module, has_symtab, missing, first);
    }
}

static int32_t read_i32(const void *base, size_t off)
{
    int32_t v;
    memcpy(&v, (const unsigned char *)base + off, sizeof v);
    return v;
}

static uint64_t read_u64(const void *base, size_t off)
{
    uint64_t v;
    memcpy(&v, (const unsigned char *)base + off, sizeof v);
    return v;
}

static uintptr_t read_ptr(const void *base, size_t off)
{
    uintptr_t v;
    memcpy(&v, (const unsigned char *)base + off, sizeof v);
    return v;
}

static bool holds_ptr(const void *base, size_t off, const void *want)
{
    return read_ptr(base, off) == (uintptr_t)want;
}

static void candidate_add(struct pi_candidates *c, size_t off)
{
    if (c->n < PI_MAX_CANDIDATES) {
        c->off[c->n] = off;
    }
    c->n++;
}

/* An ambiguous or missing field is an error the caller must see, with what was observed. */
static size_t expect_unique(const struct pi_candidates *c, const char *field, const char *criterion)
{
    if (c->n == 1) {
        return c->off[0];
    }
    char seen[256] = "no offset";
    if (c->n > 1) {
        int len = snprintf(seen, sizeof seen, "%zu offsets (", c->n);
        for (size_t i = 0; i < c->n && i < PI_MAX_CANDIDATES && len < (int)sizeof seen; i++) {
            len += snprintf(seen + len, sizeof seen - (size_t)len, "%s%zu", i ? ", " : "", c->off[i]);
        }
        if (len < (int)sizeof seen) {
            snprintf(seen + len, sizeof seen - (size_t)len, ")");
        }
    }
    fail(PI_EXIT_LAYOUT, "%s: expected exactly one offset where %s, found %s", field, criterion, seen);
}

/* Copy one table entry; false when the call or the read faults, the pointer is NULL or too long. */
static bool guarded_name(pi_name_fn fn, int index, char *out, size_t cap, const char **ptr_out)
{
    volatile bool ok = false;
    *ptr_out = NULL;
    g_fault_armed = 1;
    if (sigsetjmp(g_fault_jmp, 1) == 0) {
        const char *s = fn(index);
        *ptr_out = s;
        if (s != NULL) {
            size_t n = 0;
            while (n + 1 < cap && s[n] != '\0') {
                out[n] = s[n];
                n++;
            }
            out[n] = '\0';
            ok = s[n] == '\0';
        }
    }
    g_fault_armed = 0;
    return ok;
}

/* Copy n pointers from an address read out of a struct, which may not be a pointer at all. */
static bool guarded_copy(const void *src, void *dst, size_t n)
{
    volatile bool ok = false;
    g_fault_armed = 1;
    if (sigsetjmp(g_fault_jmp, 1) == 0) {
        memcpy(dst, src, n);
        ok = true;
    }
    g_fault_armed = 0;
    return ok;
}

static bool is_upper_identifier(const char *s)
{
    if (!(s[0] >= 'A' && s[0] <= 'Z')) {
        return false;
    }
    for (const char *p = s + 1; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return false;
        }
    }
    return true;
}

static bool is_printable_name(const char *s)
{
    if (s[0] == '\0') {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f) {
            return false;
        }
    }
    return true;
}

static long table_index(const struct pi_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->name[i], name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static const char *first_entry(pi_name_fn fn)
{
    char scratch[PI_NAME_CAP];
    const char *ptr = NULL;
    if (fn != NULL) {
        guarded_name(fn, 0, scratch, sizeof scratch, &ptr);
    }
    return ptr;
}

/*
 * Read an enum name table that has no exported bound: stop at the first entry that is not an
 * upper-case identifier, that is the first entry of another table (the linker may place them
 * back to back), or that repeats an earlier entry.
 */
static void read_name_table(pi_name_fn fn, const char *const *foreign_firsts, size_t n_foreign, struct pi_table *t)
{
    t->n = 0;
    if (fn == NULL) {
        return;
    }
    for (int i = 0; i < PI_MAX_TABLE; i++) {
        const char *ptr;
        if (!guarded_name(fn, i, t->name[i], PI_NAME_CAP, &ptr) || !is_upper_identifier(t->name[i])) {
            return;
        }
        for (size_t f = 0; f < n_foreign; f++) {
            if (foreign_firsts[f] != NULL && ptr == foreign_firsts[f]) {
                return;
            }
        }
        if (table_index(t, t->name[i]) >= 0) {
            return;
        }
        t->n = (size_t)i + 1;
    }
}

/* Called by ggml_abort before abort(): leave the failed probe call instead of dying. */
static void on_ggml_abort(const char *message)
{
    (void)message;
    if (g_fault_armed) {
        g_last_fault = SIGABRT;
        siglongjmp(g_fault_jmp, SIGABRT);
    }
}

/*
 * Run fn(arg) with faults and GGML_ASSERTs turned into a false return, and stdout and stderr
 * silenced: releases before GGML_NO_BACKTRACE print a failed assertion's backtrace from a forked
 * debugger, on stdout, which carries this probe's answer.
 */
static bool guarded_call(void (*fn)(void *), void *arg)
{
    volatile bool ok = false;
    fflush(stderr);
    fflush(stdout);
    int saved_stderr = dup(STDERR_FILENO);
    int saved_stdout = dup(STDOUT_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    if (saved_stderr >= 0 && devnull >= 0) {
        dup2(devnull, STDERR_FILENO);
    }
    if (saved_stdout >= 0 && devnull >= 0) {
        dup2(devnull, STDOUT_FILENO);
    }
    g_fault_armed = 1;
    if (sigsetjmp(g_fault_jmp, 1) == 0) {
        fn(arg);
        ok = true;
    }
    g_fault_armed = 0;
    if (saved_stderr >= 0 && devnull >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
    }
    if (saved_stdout >= 0 && devnull >= 0) {
        dup2(saved_stdout, STDOUT_FILENO);
    }
    if (saved_stderr >= 0) {
        close(saved_stderr);
    }
    if (saved_stdout >= 0) {
        close(saved_stdout);
    }
    if (devnull >= 0) {
        close(devnull);
    }
    return ok;
}

struct pi_type_attempt {
    const struct pi_api *api;
    void *ctx;
    int type;
    bool divided_by_zero;
};

static void new_tensor_of_type(void *arg)
{
    struct pi_type_attempt *a = arg;
    a->api->new_tensor_1d(a->ctx, a->type, PI_TYPE_PROBE_ELEMENTS);
}

/*
 * The type enum has no exported bound, but ggml_new_tensor GGML_ASSERTs type < GGML_TYPE_COUNT
 * before anything else. Removed types (block size 0) fault on the row-size division after that
 * check, so a fault means in range and only an assertion means out of range.
 */
static bool type_in_range(const struct pi_api *api, void *ctx, int type)
{
    struct pi_type_attempt attempt = { .api = api, .ctx = ctx, .type = type };
    if (guarded_call(new_tensor_of_type, &attempt)) {
        return true;
    }
    return g_last_fault != SIGABRT;
}

/* Type names are lower-case and some are sentences ("... REMOVED, use ..."): only the bound differs. */
static void read_type_table(const struct pi_api *api, struct pi_table *t)
{
    t->n = 0;
    void *ctx = api->init((struct pi_init_params){ .mem_size = PI_TYPE_CTX_BYTES, .mem_buffer = NULL, .no_alloc = true });
    if (ctx == NULL) {
        fail(PI_EXIT_LAYOUT, "ggml_init returned NULL for a %u-byte context", PI_TYPE_CTX_BYTES);
    }
    pi_abort_callback previous = api->set_abort_callback ? api->set_abort_callback(on_ggml_abort) : NULL;
    for (int i = 0; i < PI_MAX_TABLE && type_in_range(api, ctx, i); i++) {
        const char *ptr;
        if (!guarded_name(api->type_name, i, t->name[i], PI_NAME_CAP, &ptr) || !is_printable_name(t->name[i])) {
            fail(PI_EXIT_LAYOUT, "typeNames: ggml_type_name(%d) gave no readable name, yet ggml accepts the type", i);
        }
        t->n = (size_t)i + 1;
    }
    if (api->set_abort_callback != NULL) {
        api->set_abort_callback(previous);
    }
    api->free(ctx);
}

static void require_names(const struct pi_table *ops, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (table_index(ops, names[i]) < 0) {
            fail(PI_EXIT_LAYOUT,
                 "opNames: \"%s\" is not among the %zu names read from ggml_op_name (first \"%s\", last \"%s\"); "
                 "the table bound was misread or this ggml is too old",
                 names[i], ops->n, ops->n ? ops->name[0] : "", ops->n ? ops->name[ops->n - 1] : "");
        }
    }
}

static int32_t float_bits(float f)
{
    int32_t v;
    memcpy(&v, &f, sizeof v);
    return v;
}

/* The tensor struct size is observable: an allocated tensor's data directly follows its struct. */
static long measure_tensor_size(const struct pi_api *api, void *ctx, void *first_tensor)
{
    size_t overhead = api->tensor_overhead();
    uintptr_t t = (uintptr_t)first_tensor;
    uintptr_t data = (uintptr_t)api->get_data(first_tensor);
    uintptr_t buffer = (uintptr_t)api->get_mem_buffer(ctx);
    if (data <= t || t <= buffer) {
        return -1;
    }
    size_t by_data = data - t;
    size_t object_header = t - buffer;
    if (by_data < 64 || by_data > PI_MAX_TENSOR_SCAN || object_header + by_data != overhead) {
        return -1;
    }
    return (long)by_data;
}

struct pi_probe_tensors {
    void *plain_f32, *plain_f16, *plain_i32;
    void *four_d_f32, *four_d_f16;
    void *base_a, *base_b, *sum;
    void *mm_a, *mm_b, *mm;
    void *mmid_ids, *mmid;
    void *scaled, *view;
    size_t view_offset;
    float scale;
};

static void *make_4d(const struct pi_api *api, void *ctx, int type, int64_t a, int64_t b, int64_t c, int64_t d)
{
    void *t = api->new_tensor_4d(ctx, type, a, b, c, d);
    if (t == NULL) {
        fail(PI_EXIT_LAYOUT, "ggml_new_tensor_4d returned NULL while building probe tensors");
    }
    return t;
}

static void *make_1d(const struct pi_api *api, void *ctx, int type, int64_t n)
{
    void *t = api->new_tensor_1d(ctx, type, n);
    if (t == NULL) {
        fail(PI_EXIT_LAYOUT, "ggml_new_tensor_1d returned NULL while building probe tensors");
    }
    return t;
}

static void find_type(const struct pi_probe_tensors *pt, size_t scan, long f32, long f16, long i32,
                      struct pi_tensor_layout *out)
{
    struct pi_candidates c = { 0 };
    for (size_t o = 0; o + 4 <= scan; o += 4) {
        if (read_i32(pt->plain_f32, o) == f32 && read_i32(pt->plain_f16, o) == f16 &&
            (pt->plain_i32 == NULL || read_i32(pt->plain_i32, o) == i32)) {
            candidate_add(&c, o);
        }
    }
    out->type = expect_unique(&c, "tensor.type", "an F32, an F16 and an I32 tensor hold their ggml_type_name indices");
}

static void find_ne_nb(const struct pi_api *api, const struct pi_probe_tensors *pt, size_t scan,
                       struct pi_tensor_layout *out)
{
    static const int64_t ne[4] = { 3, 5, 7, 11 };
    const int64_t elements = ne[0] * ne[1] * ne[2] * ne[3];
    struct pi_candidates c = { 0 };
    for (size_t o = 0; o + 32 <= scan; o += 8) {
        bool match = true;
        for (int d = 0; d < 4; d++) {
            match = match && (int64_t)read_u64(pt->four_d_f32, o + 8u * d) == ne[d] &&
                    (int64_t)read_u64(pt->four_d_f16, o + 8u * d) == ne[d];
        }
        if (match) {
            candidate_add(&c, o);
        }
    }
    out->ne = expect_unique(&c, "tensor.ne", "a 3x5x7x11 tensor holds int64 3,5,7,11");

    /* Strides follow from ne and the element size that ggml_nbytes implies: nb[i] = nb[i-1] * ne[i-1]. */
    size_t size32 = api->nbytes(pt->four_d_f32), size16 = api->nbytes(pt->four_d_f16);
    if (size32 % (size_t)elements != 0 || size16 % (size_t)elements != 0) {
        fail(PI_EXIT_LAYOUT, "tensor.nb: ggml_nbytes gave %zu and %zu bytes for %lld elements", size32, size16,
             (long long)elements);
    }
    uint64_t nb32[4] = { size32 / (size_t)elements }, nb16[4] = { size16 / (size_t)elements };
    for (int d = 1; d < 4; d++) {
        nb32[d] = nb32[d - 1] * (uint64_t)ne[d - 1];
        nb16[d] = nb16[d - 1] * (uint64_t)ne[d - 1];
    }
    c.n = 0;
    for (size_t o = 0; o + 32 <= scan; o += 8) {
        bool match = true;
        for (int d = 0; d < 4; d++) {
            match = match && read_u64(pt->four_d_f32, o + 8u * d) == nb32[d] &&
                    read_u64(pt->four_d_f16, o + 8u * d) == nb16[d];
        }
        if (match) {
            candidate_add(&c, o);
        }
    }
    out->nb = expect_unique(&c, "tensor.nb", "contiguous F32 and F16 3x5x7x11 tensors hold their byte strides");
    if (nb32[3] * (uint64_t)ne[3] != size32) {
        fail(PI_EXIT_LAYOUT, "tensor.nb: nb[3]*ne[3] = %llu disagrees with ggml_nbytes = %zu",
             (unsigned long long)(nb32[3] * (uint64_t)ne[3]), size32);
    }
}

static void find_op_and_params(const struct pi_probe_tensors *pt, size_t scan, const struct pi_table *ops,
                               struct pi_tensor_layout *out)
{
    const int32_t add = (int32_t)table_index(ops, "ADD"), mul_mat = (int32_t)table_index(ops, "MUL_MAT");
    const int32_t scale = (int32_t)table_index(ops, "SCALE"), view = (int32_t)table_index(ops, "VIEW");
    const int32_t mul_mat_id = (int32_t)table_index(ops, "MUL_MAT_ID");
    struct pi_candidates c = { 0 };
    for (size_t o = 0; o + 4 <= scan; o += 4) {
        if (read_i32(pt->plain_f32, o) == 0 && read_i32(pt->sum, o) == add && read_i32(pt->mm, o) == mul_mat &&
            read_i32(pt->scaled, o) == scale && read_i32(pt->view, o) == view &&
            (pt->mmid == NULL || read_i32(pt->mmid, o) == mul_mat_id)) {
            candidate_add(&c, o);
        }
    }
    out->op = expect_unique(&c, "tensor.op", "a leaf is NONE and ADD, MUL_MAT, SCALE and VIEW results hold their op indices");

    /* ggml_scale keeps its float factor and ggml_view_1d its byte offset in op_params[0]. */
    c.n = 0;
    for (size_t o = 0; o + 8 <= scan; o += 4) {
        if (read_i32(pt->plain_f32, o) == 0 && read_i32(pt->scaled, o) == float_bits(pt->scale) &&
            (uint32_t)read_i32(pt->view, o) == (uint32_t)pt->view_offset) {
            candidate_add(&c, o);
        }
    }
    out->op_params = expect_unique(&c, "tensor.op_params",
                                   "a scale result holds its float factor and a view its byte offset");
}

static void find_flags(const struct pi_api *api, void *ctx, int f32, size_t scan, struct pi_tensor_layout *out)
{
    static const struct {
        const char *what;
        int32_t bit;
    } marks[] = { { "ggml_set_input", 1 }, { "ggml_set_output", 2 } };
    long found = -1;
    unsigned char before[PI_MAX_TENSOR_SCAN];
    for (size_t m = 0; m < 2; m++) {
        void *t = make_1d(api, ctx, f32, 16);
        memcpy(before, t, scan);
        if (marks[m].bit == 1) {
            api->set_input(t);
        } else {
            api->set_output(t);
        }
        struct pi_candidates c = { 0 };
        for (size_t o = 0; o + 4 <= scan; o += 4) {
            if (read_i32(before, o) != read_i32(t, o)) {
                candidate_add(&c, o);
            }
        }
        char criterion[96];
        snprintf(criterion, sizeof criterion, "%s changes one int32", marks[m].what);
        size_t off = expect_unique(&c, "tensor.flags", criterion);
        if (read_i32(before, off) != 0 || read_i32(t, off) != marks[m].bit || (found >= 0 && (size_t)found != off)) {
            fail(PI_EXIT_LAYOUT, "tensor.flags: %s changed offset %zu from %d to %d (expected 0 to %d at %ld)",
                 marks[m].what, off, read_i32(before, off), read_i32(t, off), marks[m].bit, found);
        }
        found = (long)off;
    }
    out->flags = (size_t)found;
}

static void find_sources_and_view(const struct pi_api *api, const struct pi_probe_tensors *pt, size_t scan,
                                  struct pi_tensor_layout *out)
{
    struct pi_candidates c = { 0 };
    for (size_t o = 0; o + 16 <= scan; o += 8) {
        if (holds_ptr(pt->sum, o, pt->base_a) && holds_ptr(pt->sum, o + 8, pt->base_b) &&
            holds_ptr(pt->mm, o, pt->mm_a) && holds_ptr(pt->mm, o + 8, pt->mm_b) &&
            holds_ptr(pt->scaled, o, pt->base_a) && holds_ptr(pt->view, o, pt->base_a)) {
            candidate_add(&c, o);
        }
    }
    out->src = expect_unique(&c, "tensor.src", "ggml_add(a, b) and ggml_mul_mat(a, b) hold a, b in two consecutive pointers");

    /* A view names its base twice: src[0] and view_src; an ordinary op leaves view_src NULL. */
    c.n = 0;
    for (size_t o = 0; o + 8 <= scan; o += 8) {
        if (o != out->src && holds_ptr(pt->view, o, pt->base_a) && read_ptr(pt->sum, o) == 0 &&
            read_ptr(pt->plain_f32, o) == 0) {
            candidate_add(&c, o);
        }
    }
    out->view_src = expect_unique(&c, "tensor.view_src", "a view holds its base outside src[0] and an add result holds NULL");
    if (out->view_src <= out->src || (out->view_src - out->src) % sizeof(void *) != 0) {
        fail(PI_EXIT_LAYOUT, "tensor.src: view_src (%zu) does not follow the src array (%zu), so GGML_MAX_SRC is unknown",
             out->view_src, out->src);
    }
    out->max_src = (out->view_src - out->src) / sizeof(void *);
    for (size_t o = out->src + 16; o < out->view_src; o += 8) {
        if (read_ptr(pt->sum, o) != 0 || read_ptr(pt->plain_f32, o) != 0) {
            fail(PI_EXIT_LAYOUT, "tensor.src: slot at %zu between src[1] and view_src is not NULL for a two-source op", o);
        }
    }
    if (pt->mmid != NULL && (out->max_src < 3 || !holds_ptr(pt->mmid, out->src + 16, pt->mmid_ids))) {
        fail(PI_EXIT_LAYOUT, "tensor.src: ggml_mul_mat_id does not hold its ids tensor in src[2] at %zu (max_src %zu)",
             out->src + 16, out->max_src);
    }

    /* view_offs repeats the byte offset op_params[0] holds; skip op_params itself. */
    c.n = 0;
    for (size_t o = 0; o + 8 <= scan; o += 8) {
        bool in_op_params = o + 8 > out->op_params && o < out->op_params + 8;
        if (!in_op_params && read_u64(pt->view, o) == pt->view_offset && read_u64(pt->sum, o) == 0) {
            candidate_add(&c, o);
        }
    }
    out->view_offs = expect_unique(&c, "tensor.view_offs", "a view holds its byte offset as size_t outside op_params");

    /* data: allocated tensors point at their own buffer, a view at its base's buffer plus the offset. */
    const unsigned char *base_data = api->get_data(pt->base_a);
    c.n = 0;
    for (size_t o = 0; o + 8 <= scan; o += 8) {
        if (api->get_data(pt->plain_f32) != NULL && holds_ptr(pt->plain_f32, o, api->get_data(pt->plain_f32)) &&
            holds_ptr(pt->sum, o, api->get_data(pt->sum)) && holds_ptr(pt->view, o, base_data + pt->view_offset)) {
            candidate_add(&c, o);
        }
    }
    out->data = expect_unique(&c, "tensor.data", "tensors hold ggml_get_data() and a view its base data plus offset");
}

static void find_name(const struct pi_api *api, void *ctx, int f32, size_t scan, struct pi_tensor_layout *out)
{
    static const char probe_name[] = "pi_probe_name";
    void *t = make_1d(api, ctx, f32, 4);
    api->set_name(t, probe_name);
    struct pi_candidates c = { 0 };
    for (size_t o = 0; o + sizeof probe_name <= scan; o++) {
        if (memcmp((const unsigned char *)t + o, probe_name, sizeof probe_name) == 0) {
            candidate_add(&c, o);
        }
    }
    out->name = expect_unique(&c, "tensor.name", "ggml_set_name(\"pi_probe_name\") stored the string");
    if (api->get_name(t) != (const char *)t + out->name) {
        fail(PI_EXIT_LAYOUT, "tensor.name: ggml_get_name does not return the tensor address plus %zu", out->name);
    }

    /* ggml_set_name truncates to GGML_MAX_NAME - 1 characters. */
    char long_name[PI_LONG_NAME_LEN + 1];
    memset(long_name, 'n', PI_LONG_NAME_LEN);
    long_name[PI_LONG_NAME_LEN] = '\0';
    void *u = make_1d(api, ctx, f32, 4);
    api->set_name(u, long_name);
    const char *kept = api->get_name(u);
    size_t kept_len = strnlen(kept, PI_LONG_NAME_LEN + 1);
    if (kept != (const char *)u + out->name || kept_len >= PI_LONG_NAME_LEN || kept_len == 0) {
        fail(PI_EXIT_LAYOUT, "tensor.name: a %d-character name kept %zu characters; GGML_MAX_NAME is unknown",
             PI_LONG_NAME_LEN, kept_len);
    }
    out->max_name = kept_len + 1;
}

/* Fields must not overlap, must fit the struct, and op_params must be zero up to the next field. */
static void check_layout(const struct pi_probe_tensors *pt, size_t scan, struct pi_tensor_layout *l)
{
    const struct pi_field fields[] = {
        { "type", l->type, 4 },
        { "ne", l->ne, 32 },
        { "nb", l->nb, 32 },
        { "op", l->op, 4 },
        { "op_params", l->op_params, 8 },
        { "flags", l->flags, 4 },
        { "src", l->src, l->max_src * sizeof(void *) },
        { "view_src", l->view_src, sizeof(void *) },
        { "view_offs", l->view_offs, 8 },
        { "data", l->data, sizeof(void *) },
        { "name", l->name, l->max_name },
    };
    const size_t n = sizeof fields / sizeof fields[0];
    size_t next_after_op_params = scan;
    for (size_t i = 0; i < n; i++) {
        if (fields[i].off + fields[i].len > scan) {
            fail(PI_EXIT_LAYOUT, "tensor.%s: offset %zu + %zu bytes lies beyond the %zu-byte struct", fields[i].name,
                 fields[i].off, fields[i].len, scan);
        }
        for (size_t j = i + 1; j < n; j++) {
            if (fields[i].off < fields[j].off + fields[j].len && fields[j].off < fields[i].off + fields[i].len) {
                fail(PI_EXIT_LAYOUT, "tensor.%s (%zu, %zu bytes) overlaps tensor.%s (%zu, %zu bytes)", fields[i].name,
                     fields[i].off, fields[i].len, fields[j].name, fields[j].off, fields[j].len);
            }
        }
        if (fields[i].off > l->op_params && fields[i].off < next_after_op_params) {
            next_after_op_params = fields[i].off;
        }
    }
    for (size_t o = l->op_params; o < next_after_op_params; o++) {
        if (((const unsigned char *)pt->plain_f32)[o] != 0) {
            fail(PI_EXIT_LAYOUT, "tensor.op_params: a leaf tensor has a non-zero byte at %zu before the next field (%zu)",
                 o, next_after_op_params);
        }
    }
    l->max_op_params = next_after_op_params - l->op_params;
}

static void probe_tensor(const struct pi_api *api, const struct pi_table *ops, const struct pi_table *types,
                         struct pi_tensor_layout *out)
{
    const long f32 = table_index(types, "f32"), f16 = table_index(types, "f16"), i32 = table_index(types, "i32");
    if (f32 < 0 || f16 < 0) {
        fail(PI_EXIT_LAYOUT, "typeNames: \"f32\" or \"f16\" missing from %zu names read from ggml_type_name", types->n);
    }

    /* An allocating context: data pointers are real and follow each tensor struct. */
    g_stage = "ggml_init";
    void *ctx = api->init((struct pi_init_params){ .mem_size = PI_CTX_BYTES, .mem_buffer = NULL, .no_alloc = false });
    if (ctx == NULL) {
        fail(PI_EXIT_LAYOUT, "ggml_init returned NULL for a %u-byte context", PI_CTX_BYTES);
    }

    g_stage = "tensor construction";
    struct pi_probe_tensors pt = { 0 };
    pt.plain_f32 = make_1d(api, ctx, (int)f32, 64);
    out->size = measure_tensor_size(api, ctx, pt.plain_f32);
    size_t scan = out->size > 0 ? (size_t)out->size
                                : (api->tensor_overhead() < PI_FALLBACK_TENSOR_SCAN ? api->tensor_overhead()
                                                                                     : PI_FALLBACK_TENSOR_SCAN);
    pt.plain_f16 = make_1d(api, ctx, (int)f16, 64);
    pt.plain_i32 = i32 >= 0 ? make_1d(api, ctx, (int)i32, 64) : NULL;
    pt.four_d_f32 = make_4d(api, ctx, (int)f32, 3, 5, 7, 11);
    pt.four_d_f16 = make_4d(api, ctx, (int)f16, 3, 5, 7, 11);
    pt.base_a = make_1d(api, ctx, (int)f32, 2048);
    pt.base_b = make_1d(api, ctx, (int)f32, 2048);
    pt.sum = api->add(ctx, pt.base_a, pt.base_b);
    pt.mm_a = make_4d(api, ctx, (int)f32, 32, 4, 1, 1);
    pt.mm_b = make_4d(api, ctx, (int)f32, 32, 2, 1, 1);
    pt.mm = api->mul_mat(ctx, pt.mm_a, pt.mm_b);
    if (api->mul_mat_id != NULL && i32 >= 0) {
        void *experts = make_4d(api, ctx, (int)f32, 32, 4, 4, 1);
        void *rows = make_4d(api, ctx, (int)f32, 32, 2, 3, 1);
        pt.mmid_ids = make_4d(api, ctx, (int)i32, 2, 3, 1, 1);
        pt.mmid = api->mul_mat_id(ctx, experts, rows, pt.mmid_ids);
    }
    pt.scale = 1234.5f;
    pt.scaled = api->scale(ctx, pt.base_a, pt.scale);
    pt.view_offset = 4 * 1237;
    pt.view = api->view_1d(ctx, pt.base_a, 100, pt.view_offset);
    if (pt.sum == NULL || pt.mm == NULL || pt.scaled == NULL || pt.view == NULL) {
        fail(PI_EXIT_LAYOUT, "a ggml op returned NULL while building probe tensors");
    }

    g_stage = "tensor field search";
    find_type(&pt, scan, f32, f16, i32, out);
    find_ne_nb(api, &pt, scan, out);
    find_op_and_params(&pt, scan, ops, out);
    find_flags(api, ctx, (int)f32, scan, out);
    find_sources_and_view(api, &pt, scan, out);
    find_name(api, ctx, (int)f32, scan, out);
    check_layout(&pt, scan, out);
    api->free(ctx);
}

struct pi_graph_layout {
    size_t n_nodes, nodes;
};

static void *build_chain_graph(const struct pi_api *api, void *ctx, int f32, void **tail)
{
    void *x = make_1d(api, ctx, f32, 8);
    void *y = make_1d(api, ctx, f32, 8);
    void *t = api->add(ctx, x, y);
    t = api->scale(ctx, t, 2.0f);
    t = api->add(ctx, t, y);
    t = api->scale(ctx, t, 0.5f);
    t = api->add(ctx, t, x);
    void *graph = api->new_graph(ctx);
    if (graph == NULL) {
        fail(PI_EXIT_LAYOUT, "ggml_new_graph returned NULL");
    }
    api->build_forward_expand(graph, t);
    *tail = t;
    return graph;
}

static void probe_graph(const struct pi_api *api, const struct pi_cpu_api *cpu, int f32, struct pi_graph_layout *out,
                        long *cplan_n_threads)
{
    g_stage = "graph construction";
    void *ctx = api->init((struct pi_init_params){ .mem_size = PI_CTX_BYTES, .mem_buffer = NULL, .no_alloc = false });
    if (ctx == NULL) {
        fail(PI_EXIT_LAYOUT, "ggml_init returned NULL for a %u-byte context", PI_CTX_BYTES);
    }
    void *tail;
    void *graph = build_chain_graph(api, ctx, f32, &tail);
    size_t scan = PI_GRAPH_SCAN;
    if (api->graph_overhead != NULL && api->graph_overhead() < scan) {
        scan = api->graph_overhead();
    }

    /* n_nodes: the one int32 that goes from N to N+1 when one more node is expanded (no new leaf). */
    unsigned char before[PI_GRAPH_SCAN];
    memcpy(before, graph, scan);
    const int n_before = api->graph_n_nodes(graph);
    void *extra = api->add(ctx, tail, tail);
    api->build_forward_expand(graph, extra);
    const int n_after = api->graph_n_nodes(graph);
    if (n_before < 2 || n_after != n_before + 1 || api->graph_node(graph, n_after - 1) != extra) {
        fail(PI_EXIT_LAYOUT, "cgraph: expanding one node took ggml_graph_n_nodes from %d to %d", n_before, n_after);
    }
    g_stage = "graph field search";
    struct pi_candidates c = { 0 };
    for (size_t o = 0; o + 4 <= scan; o += 4) {
        if (read_i32(before, o) == n_before && read_i32(graph, o) == n_after) {
            candidate_add(&c, o);
        }
    }
    out->n_nodes = expect_unique(&c, "cgraph.n_nodes", "ggml_graph_n_nodes went from N to N+1");

    /* nodes: the pointer whose array matches ggml_graph_node(graph, i) for every i. */
    void *expected[64], *seen[64];
    if (n_after > 64) {
        fail(PI_EXIT_LAYOUT, "cgraph: the probe graph has %d nodes, more than expected", n_after);
    }
    for (int i = 0; i < n_after; i++) {
        expected[i] = api->graph_node(graph, i);
    }
    c.n = 0;
    for (size_t o = 0; o + sizeof(void *) <= scan; o += sizeof(void *)) {
        uintptr_t p = read_ptr(graph, o);
        if (p != 0 && p % sizeof(void *) == 0 && guarded_copy((const void *)p, seen, (size_t)n_after * sizeof(void *)) &&
            memcmp(seen, expected, (size_t)n_after * sizeof(void *)) == 0) {
            candidate_add(&c, o);
        }
    }
    out->nodes = expect_unique(&c, "cgraph.nodes", "a pointer leads to the array ggml_graph_node() walks");

    /* ggml_graph_plan's n_threads is the one int32 that follows the requested thread count. */
    *cplan_n_threads = -1;
    if (cpu->graph_plan != NULL) {
        g_stage = "ggml_graph_plan";
        static const int requested[] = { 3, 5, 7 };
        union pi_cplan_mirror plans[3];
        for (int i = 0; i < 3; i++) {
            memset(&plans[i], 0, sizeof plans[i]);
            plans[i] = cpu->graph_plan(graph, requested[i], NULL);
        }
        c.n = 0;
        for (size_t o = 0; o + 4 <= PI_CPLAN_MIRROR_BYTES; o += 4) {
            if (read_i32(plans[0].bytes, o) == 3 && read_i32(plans[1].bytes, o) == 5 && read_i32(plans[2].bytes, o) == 7) {
                candidate_add(&c, o);
            }
        }
        *cplan_n_threads = (long)expect_unique(&c, "cplan.n_threads", "ggml_graph_plan(graph, n, NULL) returns n for n = 3, 5, 7");
    }
    api->free(ctx);
}

static void print_table(const char *key, const struct pi_table *t, bool with_comma)
{
    printf("\"%s\":[", key);
    for (size_t i = 0; i < t->n; i++) {
        if (i) {
            putchar(',');
        }
        json_string(stdout, t->name[i]);
    }
    printf("]%s", with_comma ? "," : "");
}

/*
 * Bytes per block and elements per block of each type (ggml_type_size, ggml_blck_size), for the
 * bytes an operator moves; null when the build does not export them. Removed types give 0.
 */
static void print_type_sizes(const struct pi_api *api, const struct pi_table *types)
{
    const char *keys[] = { "typeSizes", "blockSizes" };
    for (int k = 0; k < 2; k++) {
        printf("\"%s\":", keys[k]);
        if (api->type_size == NULL || api->blck_size == NULL) {
            fputs("null,", stdout);
            continue;
        }
        putchar('[');
        for (size_t i = 0; i < types->n; i++) {
            long long v = k == 0 ? (long long)api->type_size((int)i) : (long long)api->blck_size((int)i);
            printf("%s%lld", i ? "," : "", v);
        }
        fputs("],", stdout);
    }
}

static void print_optional_string(const char *key, const char *(*fn)(void))
{
    printf("\"%s\":", key);
    const char *s = fn != NULL ? fn() : NULL;
    if (s != NULL) {
        json_string(stdout, s);
    } else {
        fputs("null", stdout);
    }
    putchar(',');
}

/*
 * Loads `path` once (the base and CPU arguments name one file for a static build): a shared
 * library by dlopen, a position-independent executable through a copy (executable.c).
 */
static const struct pi_module *open_module(const char *path)
{
    static struct pi_module modules[2];
    static size_t n_modules;
    for (size_t i = 0; i < n_modules; i++) {
        if (strcmp(modules[i].path, path) == 0) {
            return &modules[i];
        }
    }
    struct pi_module *m = &modules[n_modules++];
    m->path = path;
    m->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (m->handle != NULL) {
        return m;
    }
    const char *error = dlerror();
    char why[1024];
    snprintf(why, sizeof why, "%s", error != NULL ? error : "unknown dlopen error");
    switch (pi_file_kind(path)) {
    case PI_FILE_PIE:
        m->handle = pi_load_executable(path, &m->bias, why, sizeof why);
        m->executable = true;
        break;
    case PI_FILE_FIXED_EXECUTABLE:
        fail(PI_EXIT_LOAD,
             "cannot load %s: it is an executable linked at fixed addresses (not position-independent), "
             "which cannot be loaded beside the probe",
             path);
    default:
        break;
    }
    if (m->handle == NULL) {
        fail(PI_EXIT_LOAD, "cannot load %s: %s", path, why);
    }
    return m;
}

static struct pi_table g_ops, g_unary, g_glu, g_types;

/*
 * --score LIB...: ggml_backend_score() of each CPU backend variant, as ggml's loader asks it, so
 * that the tracer probes the variant ggml will pick (highest score) instead of all of them.
 */
static int score_variants(int argc, char **argv)
{
    printf("{\"scores\":{");
    for (int i = 2; i < argc; i++) {
        void *lib = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
        int (*score)(void) = lib ? (int (*)(void))dlsym(lib, "ggml_backend_score") : NULL;
        printf("%s\"", i > 2 ? "," : "");
        for (const char *c = argv[i]; *c; c++) {
            if (*c == '"' || *c == '\\') putchar('\\');
            putchar(*c);
        }
        printf("\":%d", score ? score() : -1);
    }
    printf("}}\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--score") == 0) return score_variants(argc, argv);
    if (argc < 2 || argc > 3) {
        fail(PI_EXIT_LOAD, "usage: %s /path/to/libggml-base.so [/path/to/libggml-cpu.so]",
             argc > 0 ? argv[0] : "ggml-layout-probe");
    }
    const char *base_path = argv[1];
    const char *cpu_path = argc == 3 ? argv[2] : NULL;

    /* ggml_abort would otherwise fork a debugger for a backtrace before we report the abort. */
    setenv("GGML_NO_BACKTRACE", "1", 0);
    /* older releases ignore it and fork gdb from PATH: a probe has nothing else to run */
    setenv("PATH", "", 1);
    install_fault_handlers();

    g_stage = "dlopen";
    const struct pi_module *base = open_module(base_path);
    struct pi_api api = { 0 };
    const struct pi_symbol symbols[] = {
        { "ggml_init", (void **)&api.init, true },
        { "ggml_free", (void **)&api.free, true },
        { "ggml_get_mem_buffer", (void **)&api.get_mem_buffer, true },
        { "ggml_tensor_overhead", (void **)&api.tensor_overhead, true },
        { "ggml_graph_overhead", (void **)&api.graph_overhead, false },
        { "ggml_new_tensor_1d", (void **)&api.new_tensor_1d, true },
        { "ggml_new_tensor_4d", (void **)&api.new_tensor_4d, true },
        { "ggml_set_name", (void **)&api.set_name, true },
        { "ggml_get_name", (void **)&api.get_name, true },
        { "ggml_get_data", (void **)&api.get_data, true },
        { "ggml_nbytes", (void **)&api.nbytes, true },
        { "ggml_set_input", (void **)&api.set_input, true },
        { "ggml_set_output", (void **)&api.set_output, true },
        { "ggml_add", (void **)&api.add, true },
        { "ggml_mul_mat", (void **)&api.mul_mat, true },
        { "ggml_mul_mat_id", (void **)&api.mul_mat_id, false },
        { "ggml_scale", (void **)&api.scale, true },
        { "ggml_view_1d", (void **)&api.view_1d, true },
        { "ggml_new_graph", (void **)&api.new_graph, true },
        { "ggml_build_forward_expand", (void **)&api.build_forward_expand, true },
        { "ggml_graph_n_nodes", (void **)&api.graph_n_nodes, true },
        { "ggml_graph_node", (void **)&api.graph_node, true },
        { "ggml_op_name", (void **)&api.op_name, true },
        { "ggml_op_symbol", (void **)&api.op_symbol, false },
        { "ggml_unary_op_name", (void **)&api.unary_op_name, true },
        { "ggml_glu_op_name", (void **)&api.glu_op_name, false },
        { "ggml_type_name", (void **)&api.type_name, true },
        { "ggml_type_size", (void **)&api.type_size, false },
        { "ggml_blck_size", (void **)&api.blck_size, false },
        { "ggml_set_abort_callback", (void **)&api.set_abort_callback, false },
        { "ggml_version", (void **)&api.version, false },
        { "ggml_commit", (void **)&api.commit, false },
    };
    resolve_symbols(base, symbols, sizeof symbols / sizeof symbols[0]);

    /* The CPU library is optional; it brings the only observable cplan. */
    struct pi_cpu_api cpu = { 0 };
    if (cpu_path != NULL) {
        const struct pi_module *cpu_module = open_module(cpu_path);
        const struct pi_symbol cpu_symbols[] = {
            { "ggml_graph_plan", (void **)&cpu.graph_plan, true },
            { "ggml_backend_score", (void **)&cpu.backend_score, false },
            { "ggml_cpu_init", (void **)&cpu.cpu_init, false },
        };
        resolve_symbols(cpu_module, cpu_symbols, sizeof cpu_symbols / sizeof cpu_symbols[0]);
        /* A variant built for a newer ISA would die of SIGILL: ask it first, as ggml's loader does. */
        g_stage = "ggml_backend_score";
        if (cpu.backend_score != NULL && cpu.backend_score() <= 0) {
            fail(PI_EXIT_LOAD,
                 "%s is a CPU variant this machine cannot run (ggml_backend_score() = 0); pass the variant the target loads",
                 cpu_path);
        }
        g_stage = "ggml_cpu_init";
        if (cpu.cpu_init != NULL) {
            cpu.cpu_init();
        }
    }

    /* Name tables first: the tensor probes look up op and type indices by name. */
    g_stage = "name tables";
    const char *first_op = first_entry(api.op_name), *first_symbol = first_entry(api.op_symbol);
    const char *first_unary = first_entry(api.unary_op_name), *first_glu = first_entry(api.glu_op_name);
    const char *const op_foreign[] = { first_symbol, first_unary, first_glu };
    const char *const unary_foreign[] = { first_op, first_symbol, first_glu };
    const char *const glu_foreign[] = { first_op, first_symbol, first_unary };
    read_name_table(api.op_name, op_foreign, 3, &g_ops);
    read_name_table(api.unary_op_name, unary_foreign, 3, &g_unary);
    read_name_table(api.glu_op_name, glu_foreign, 3, &g_glu);
    g_stage = "type table";
    read_type_table(&api, &g_types);

    if (g_ops.n == 0 || strcmp(g_ops.name[0], "NONE") != 0) {
        fail(PI_EXIT_LAYOUT, "opNames: ggml_op_name(0) is \"%s\", expected \"NONE\"", g_ops.n ? g_ops.name[0] : "");
    }
    static const char *const required_ops[] = { "ADD",    "MUL_MAT",  "MUL_MAT_ID", "GET_ROWS", "ARGSORT",
                                                "SOFT_MAX", "ROPE",   "RMS_NORM",   "SCALE",    "VIEW" };
    require_names(&g_ops, required_ops, sizeof required_ops / sizeof required_ops[0]);
    if (g_unary.n == 0 || strcmp(g_unary.name[0], "ABS") != 0) {
        fail(PI_EXIT_LAYOUT, "unaryOpNames: ggml_unary_op_name(0) is \"%s\", expected \"ABS\"",
             g_unary.n ? g_unary.name[0] : "");
    }

    struct pi_tensor_layout tensor = { 0 };
    probe_tensor(&api, &g_ops, &g_types, &tensor);
    struct pi_graph_layout graph = { 0 };
    long cplan_n_threads = -1;
    probe_graph(&api, &cpu, (int)table_index(&g_types, "f32"), &graph, &cplan_n_threads);

    /* One JSON object; key names are the tracer's contract (abi bumps when they change). */
    g_stage = "output";
    printf("{\"abi\":%d,\"library\":", PI_ABI);
    json_string(stdout, base_path);
    fputs(",\"cpuLibrary\":", stdout);
    if (cpu_path != NULL) {
        json_string(stdout, cpu_path);
    } else {
        fputs("null", stdout);
    }
    putchar(',');
    print_optional_string("ggmlVersion", api.version);
    print_optional_string("commit", api.commit);
    printf("\"tensor\":{\"type\":%zu,\"ne\":%zu,\"nb\":%zu,\"op\":%zu,\"opParams\":%zu,\"flags\":%zu,\"src\":%zu,"
           "\"viewSrc\":%zu,\"viewOffs\":%zu,\"data\":%zu,\"name\":%zu,\"maxSrc\":%zu,\"maxName\":%zu,"
           "\"maxOpParams\":%zu,\"size\":",
           tensor.type, tensor.ne, tensor.nb, tensor.op, tensor.op_params, tensor.flags, tensor.src, tensor.view_src,
           tensor.view_offs, tensor.data, tensor.name, tensor.max_src, tensor.max_name, tensor.max_op_params);
    if (tensor.size > 0) {
        printf("%ld},", tensor.size);
    } else {
        fputs("null},", stdout);
    }
    printf("\"cgraph\":{\"nNodes\":%zu,\"nodes\":%zu},", graph.n_nodes, graph.nodes);
    printf("\"computeParams\":{\"ith\":%zu,\"nth\":%zu,\"wsize\":%zu,\"wdata\":%zu,\"source\":\"abi\"},",
           offsetof(struct pi_compute_params, ith), offsetof(struct pi_compute_params, nth),
           offsetof(struct pi_compute_params, wsize), offsetof(struct pi_compute_params, wdata));
    if (cplan_n_threads >= 0) {
        printf("\"cplan\":{\"nThreads\":%ld,\"source\":\"observed\"},", cplan_n_threads);
    } else {
        fputs("\"cplan\":null,", stdout);
    }
    print_type_sizes(&api, &g_types);
    print_table("opNames", &g_ops, true);
    print_table("unaryOpNames", &g_unary, true);
    print_table("gluOpNames", &g_glu, true);
    print_table("typeNames", &g_types, false);
    fputs("}\n", stdout);
    fflush(stdout);
    return 0;
}
