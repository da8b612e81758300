// SPDX-License-Identifier: Apache-2.0
/* Loading a position-independent executable like a shared library, and its .symtab. */
#ifndef PI_EXECUTABLE_H
#define PI_EXECUTABLE_H

#include <stddef.h>
#include <stdint.h>

enum pi_file_kind {
    PI_FILE_UNREADABLE,
    PI_FILE_NOT_ELF,
    /* ET_DYN without DF_1_PIE: a shared library, for dlopen as it is */
    PI_FILE_SHARED,
    /* ET_DYN with DF_1_PIE: a position-independent executable */
    PI_FILE_PIE,
    /* ET_EXEC: fixed addresses, cannot be loaded beside the probe */
    PI_FILE_FIXED_EXECUTABLE,
};

enum pi_file_kind pi_file_kind(const char *path);

/*
 * dlopen a copy of the PIE at `path` whose DF_1_PIE flag is cleared; its load bias in *bias.
 * NULL on failure, with the reason in `why`.
 */
void *pi_load_executable(const char *path, uintptr_t *bias, char *why, size_t why_len);

/*
 * The st_value of each of `names` among the defined functions of the file's .symtab (0 where
 * absent). -1 when the file has no .symtab (stripped), else the number found.
 */
long pi_symtab_functions(const char *path, const char *const *names, size_t n, uintptr_t *values);

#endif
