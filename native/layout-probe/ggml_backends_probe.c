// SPDX-License-Identifier: Apache-2.0
/*
 * ggml-backends-probe: the backends a ggml build has, and what the tracer needs to name them, by
 * asking the build's own backend registry through its exported API.
 *
 *   ggml-backends-probe /path/to/libggml.so
 *
 * Prints one JSON object on stdout: each device the registry lists (its name, description, type
 * and registry), where its get_name function lies (library and offset: a split's backend is
 * recognised in the target by the device's get_name, one function per backend implementation),
 * and the offset of `device` in struct ggml_backend, found on a CPU backend. Exit status: 0
 * answered; 1 usage or load failure; 2 a required symbol is missing. Errors are JSON objects
 * {"error": "..."} on stdout too.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI_BACKENDS_ABI 1
#define PI_BACKEND_SCAN 512

typedef const char *(*pi_dev_name_fn)(void *dev);

struct pi_registry_api {
    size_t (*dev_count)(void);
    void *(*dev_get)(size_t index);
    const char *(*dev_name)(void *dev);
    const char *(*dev_description)(void *dev);
    int (*dev_type)(void *dev);
    void *(*dev_backend_reg)(void *dev);
    const char *(*reg_name)(void *reg);
    size_t (*reg_count)(void);
    void *(*dev_by_type)(int type);
    void *(*dev_init)(void *dev, const char *params);
    void *(*get_device)(void *backend);
    void (*backend_free)(void *backend);
    void (*load_all_from_path)(const char *dir);
};

static sigjmp_buf g_jmp;
static volatile sig_atomic_t g_armed;

static void on_fault(int sig)
{
    if (g_armed) {
        siglongjmp(g_jmp, sig);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20 || *p >= 0x7f) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static int fail(int status, const char *message, const char *detail)
{
    fputs("{\"error\":", stdout);
    char text[2048];
    snprintf(text, sizeof text, "%s%s", message, detail ? detail : "");
    json_string(text);
    fputs("}\n", stdout);
    return status;
}

/* Whether `fn(dev)` returns the name ggml_backend_dev_name gives, without dying if it is not a function. */
static bool names_device(pi_dev_name_fn fn, void *dev, const char *expected)
{
    volatile bool same = false;
    g_armed = 1;
    if (sigsetjmp(g_jmp, 1) == 0) {
        const char *got = fn(dev);
        same = got != NULL && expected != NULL && strcmp(got, expected) == 0;
    }
    g_armed = 0;
    return same;
}

/* The offset of `device` in a CPU backend: the one pointer-sized field that holds its device. */
static long backend_device_offset(const struct pi_registry_api *api)
{
    if (!api->dev_by_type || !api->dev_init || !api->get_device) {
        return -1;
    }
    void *cpu = api->dev_by_type(0 /* GGML_BACKEND_DEVICE_TYPE_CPU */);
    void *backend = cpu ? api->dev_init(cpu, NULL) : NULL;
    if (!backend || api->get_device(backend) != cpu) {
        return -1;
    }
    long found = -1;
    int matches = 0;
    /* offset 0 is the guid pointer and the interface follows: the device comes after them */
    for (size_t o = sizeof(void *); o + sizeof(void *) <= PI_BACKEND_SCAN; o += sizeof(void *)) {
        void *p;
        memcpy(&p, (const unsigned char *)backend + o, sizeof p);
        if (p == cpu) {
            found = (long)o;
            matches++;
        }
    }
    if (api->backend_free) {
        api->backend_free(backend);
    }
    return matches == 1 ? found : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        return fail(1, "usage: ggml-backends-probe /path/to/libggml.so", NULL);
    }
    setenv("GGML_NO_BACKTRACE", "1", 0);
    signal(SIGSEGV, on_fault);
    signal(SIGBUS, on_fault);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        return fail(1, "cannot load the library: ", dlerror());
    }
    struct pi_registry_api api = { 0 };
    struct {
        const char *name;
        void **slot;
        bool required;
    } symbols[] = {
        { "ggml_backend_dev_count", (void **)&api.dev_count, true },
        { "ggml_backend_dev_get", (void **)&api.dev_get, true },
        { "ggml_backend_dev_name", (void **)&api.dev_name, true },
        { "ggml_backend_dev_description", (void **)&api.dev_description, true },
        { "ggml_backend_dev_type", (void **)&api.dev_type, true },
        { "ggml_backend_dev_backend_reg", (void **)&api.dev_backend_reg, true },
        { "ggml_backend_reg_name", (void **)&api.reg_name, true },
        { "ggml_backend_reg_count", (void **)&api.reg_count, false },
        { "ggml_backend_dev_by_type", (void **)&api.dev_by_type, false },
        { "ggml_backend_dev_init", (void **)&api.dev_init, false },
        { "ggml_backend_get_device", (void **)&api.get_device, false },
        { "ggml_backend_free", (void **)&api.backend_free, false },
        { "ggml_backend_load_all_from_path", (void **)&api.load_all_from_path, false },
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        *symbols[i].slot = dlsym(lib, symbols[i].name);
        if (!*symbols[i].slot && symbols[i].required) {
            return fail(2, "the library has no backend registry (ggml's libggml): missing ", symbols[i].name);
        }
    }
    /* a build with dynamically loaded backends (GGML_BACKEND_DL) registers them from its folder */
    if (api.reg_count && api.reg_count() == 0 && api.load_all_from_path) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", argv[1]);
        api.load_all_from_path(dirname(dir));
    }
    long device_offset = backend_device_offset(&api);
    size_t n = api.dev_count();
    printf("{\"abi\":%d,\"library\":", PI_BACKENDS_ABI);
    json_string(argv[1]);
    fputs(",\"backendDevice\":", stdout);
    if (device_offset > 0) {
        printf("%ld", device_offset);
    } else {
        fputs("null", stdout);
    }
    fputs(",\"devices\":[", stdout);
    for (size_t i = 0; i < n; i++) {
        void *dev = api.dev_get(i);
        const char *name = api.dev_name(dev);
        void *reg = api.dev_backend_reg(dev);
        printf("%s{\"name\":", i ? "," : "");
        json_string(name);
        fputs(",\"description\":", stdout);
        json_string(api.dev_description(dev));
        printf(",\"type\":%d,\"registry\":", api.dev_type(dev));
        json_string(reg ? api.reg_name(reg) : "");
        /* struct ggml_backend_device starts with its interface, whose first member is get_name */
        pi_dev_name_fn get_name;
        memcpy(&get_name, dev, sizeof get_name);
        Dl_info info;
        char real[PATH_MAX];
        fputs(",\"getName\":", stdout);
        if (names_device(get_name, dev, name) && dladdr((void *)get_name, &info) && info.dli_fname &&
            realpath(info.dli_fname, real)) {
            fputs("{\"library\":", stdout);
            json_string(real);
            printf(",\"offset\":%lu}", (unsigned long)((uintptr_t)get_name - (uintptr_t)info.dli_fbase));
        } else {
            fputs("null", stdout);
        }
        putchar('}');
    }
    fputs("]}\n", stdout);
    fflush(stdout);
    /* backends' own teardown at exit is not ours to wait for */
    _exit(0);
}
