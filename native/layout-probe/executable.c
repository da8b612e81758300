// SPDX-License-Identifier: Apache-2.0
/*
 * A llama.cpp built with BUILD_SHARED_LIBS=OFF is one executable with ggml linked in. The layout
 * probe asks ggml's own code for its layout, so it must load that executable; glibc refuses to
 * dlopen a PIE ("cannot dynamically load position-independent executable") because of the
 * DF_1_PIE flag of its dynamic section alone: the file is otherwise laid out as a shared object.
 * A copy with the flag cleared, in a memfd, loads: its constructors run, its main does not. Its
 * functions are not exported, so they are found in its .symtab at the load bias the dynamic
 * linker chose. An ET_EXEC executable (linked at fixed addresses) cannot be loaded this way.
 *
 * Copy relocations need one more change. An executable keeps its own copy of the library data it
 * uses (libstdc++'s vtables and type_info, libc's stderr), filled by an R_*_COPY relocation from
 * the library's definition; the dynamic linker skips the executable itself when it looks that
 * definition up, and binds the libraries' own references to the executable's copy. Loaded by
 * dlopen, the copy no longer counts as the executable: the relocation finds the copy itself, the
 * copies stay zero, and the first virtual call through them faults. Hiding the copies' symbols
 * (st_value 0, which the lookup skips) lets each relocation copy from the library and the
 * libraries keep their own definitions: the executable's code then reads a faithful snapshot of
 * them, which for vtables and type_info (read-only once relocated) is the same thing. The
 * snapshot must be taken once libstdc++ has set itself up (the ids of the standard locale facets
 * are assigned when its streams are first initialised): it is loaded and initialised first.
 */
#define _GNU_SOURCE
#include "executable.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct pi_image {
    const unsigned char *bytes;
    size_t size;
};

static bool map_file(const char *path, struct pi_image *image)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(Elf64_Ehdr);
    if (ok) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        ok = map != MAP_FAILED;
        image->bytes = ok ? map : NULL;
        image->size = ok ? (size_t)st.st_size : 0;
    }
    close(fd);
    return ok;
}

static void unmap_file(struct pi_image *image)
{
    if (image->bytes != NULL) {
        munmap((void *)image->bytes, image->size);
    }
}

/* A pointer to `count` records of `size` bytes at `offset`, or NULL when they leave the file. */
static const void *records(const struct pi_image *image, uint64_t offset, uint64_t count, uint64_t size)
{
    if (size == 0 || offset > image->size || count > (image->size - offset) / size) {
        return NULL;
    }
    return image->bytes + offset;
}

static const Elf64_Ehdr *elf_header(const struct pi_image *image)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)image->bytes;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) {
        return NULL;
    }
    return eh;
}

/* The file offset of the DT_FLAGS_1 entry's value, or 0 when there is none. */
static uint64_t flags_1_offset(const struct pi_image *image, const Elf64_Ehdr *eh)
{
    const Elf64_Phdr *ph = records(image, eh->e_phoff, eh->e_phnum, sizeof(Elf64_Phdr));
    for (size_t i = 0; ph != NULL && i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_DYNAMIC) {
            continue;
        }
        uint64_t n = ph[i].p_filesz / sizeof(Elf64_Dyn);
        const Elf64_Dyn *dyn = records(image, ph[i].p_offset, n, sizeof(Elf64_Dyn));
        for (uint64_t j = 0; dyn != NULL && j < n && dyn[j].d_tag != DT_NULL; j++) {
            if (dyn[j].d_tag == DT_FLAGS_1) {
                return ph[i].p_offset + j * sizeof(Elf64_Dyn) + offsetof(Elf64_Dyn, d_un);
            }
        }
    }
    return 0;
}

enum pi_file_kind pi_file_kind(const char *path)
{
    struct pi_image image = { 0 };
    if (!map_file(path, &image)) {
        return PI_FILE_UNREADABLE;
    }
    enum pi_file_kind kind = PI_FILE_NOT_ELF;
    const Elf64_Ehdr *eh = elf_header(&image);
    if (eh != NULL && eh->e_type == ET_EXEC) {
        kind = PI_FILE_FIXED_EXECUTABLE;
    } else if (eh != NULL && eh->e_type == ET_DYN) {
        uint64_t at = flags_1_offset(&image, eh);
        uint64_t flags = 0;
        if (at != 0 && at + sizeof flags <= image.size) {
            memcpy(&flags, image.bytes + at, sizeof flags);
        }
        kind = (flags & DF_1_PIE) ? PI_FILE_PIE : PI_FILE_SHARED;
    }
    unmap_file(&image);
    return kind;
}

#if defined(__x86_64__)
#define PI_R_COPY R_X86_64_COPY
#elif defined(__aarch64__)
#define PI_R_COPY R_AARCH64_COPY
#endif

/* The file offset of a virtual address in a loaded segment, or 0. */
static uint64_t offset_of_address(const Elf64_Phdr *ph, size_t n, uint64_t address)
{
    for (size_t i = 0; i < n; i++) {
        if (ph[i].p_type == PT_LOAD && address >= ph[i].p_vaddr && address < ph[i].p_vaddr + ph[i].p_filesz) {
            return ph[i].p_offset + (address - ph[i].p_vaddr);
        }
    }
    return 0;
}

/* Zero st_value of every dynamic symbol a copy relocation names, in the memfd copy `fd`. */
static bool hide_copied_symbols(const struct pi_image *image, const Elf64_Ehdr *eh, int fd)
{
#ifdef PI_R_COPY
    const Elf64_Phdr *ph = records(image, eh->e_phoff, eh->e_phnum, sizeof(Elf64_Phdr));
    uint64_t symtab = 0, rela = 0, rela_size = 0, rela_entry = sizeof(Elf64_Rela);
    for (size_t i = 0; ph != NULL && i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_DYNAMIC) {
            continue;
        }
        uint64_t n = ph[i].p_filesz / sizeof(Elf64_Dyn);
        const Elf64_Dyn *dyn = records(image, ph[i].p_offset, n, sizeof(Elf64_Dyn));
        for (uint64_t j = 0; dyn != NULL && j < n && dyn[j].d_tag != DT_NULL; j++) {
            switch (dyn[j].d_tag) {
            case DT_SYMTAB: symtab = dyn[j].d_un.d_ptr; break;
            case DT_RELA: rela = dyn[j].d_un.d_ptr; break;
            case DT_RELASZ: rela_size = dyn[j].d_un.d_val; break;
            case DT_RELAENT: rela_entry = dyn[j].d_un.d_val; break;
            default: break;
            }
        }
    }
    if (ph == NULL || symtab == 0 || rela == 0 || rela_entry < sizeof(Elf64_Rela)) {
        return true;
    }
    uint64_t symtab_at = offset_of_address(ph, eh->e_phnum, symtab);
    const unsigned char *relocs = records(image, offset_of_address(ph, eh->e_phnum, rela), rela_size, 1);
    if (symtab_at == 0 || relocs == NULL) {
        return false;
    }
    for (uint64_t at = 0; at + sizeof(Elf64_Rela) <= rela_size; at += rela_entry) {
        Elf64_Rela r;
        memcpy(&r, relocs + at, sizeof r);
        if (ELF64_R_TYPE(r.r_info) != PI_R_COPY) {
            continue;
        }
        uint64_t value_at = symtab_at + ELF64_R_SYM(r.r_info) * sizeof(Elf64_Sym) + offsetof(Elf64_Sym, st_value);
        uint64_t zero = 0;
        if (pwrite(fd, &zero, sizeof zero, (off_t)value_at) != (ssize_t)sizeof zero) {
            return false;
        }
    }
#else
    (void)image;
    (void)eh;
    (void)fd;
#endif
    return true;
}

/*
 * Loads libstdc++ (when there is one to load) and runs std::ios_base::Init's constructor, which
 * builds the standard streams and the classic locale; the object, empty, is never destroyed.
 */
static void initialise_libstdcxx(void)
{
    void *libstdcxx = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_GLOBAL);
    void (*init)(void *) = libstdcxx != NULL ? (void (*)(void *))dlsym(libstdcxx, "_ZNSt8ios_base4InitC1Ev") : NULL;
    static unsigned char ios_init_object[16];
    if (init != NULL) {
        init(ios_init_object);
    }
}

static bool write_all(int fd, const unsigned char *bytes, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, bytes, size);
        if (n <= 0) {
            return false;
        }
        bytes += n;
        size -= (size_t)n;
    }
    return true;
}

void *pi_load_executable(const char *path, uintptr_t *bias, char *why, size_t why_len)
{
    struct pi_image image = { 0 };
    if (!map_file(path, &image)) {
        snprintf(why, why_len, "cannot read %s", path);
        return NULL;
    }
    void *handle = NULL;
    int fd = -1;
    const Elf64_Ehdr *eh = elf_header(&image);
    uint64_t flags_at = eh != NULL ? flags_1_offset(&image, eh) : 0;
    const Elf64_Phdr *ph = eh != NULL ? records(&image, eh->e_phoff, eh->e_phnum, sizeof(Elf64_Phdr)) : NULL;
    if (flags_at == 0 || ph == NULL) {
        snprintf(why, why_len, "%s is not a position-independent executable", path);
        goto out;
    }
    /* The dynamic linker reads the headers and the segments only: debug info stays behind. */
    uint64_t end = eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
    for (size_t i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_offset + ph[i].p_filesz > end) {
            end = ph[i].p_offset + ph[i].p_filesz;
        }
    }
    if (end > image.size || flags_at + sizeof(uint64_t) > end) {
        snprintf(why, why_len, "%s: a segment lies beyond the end of the file", path);
        goto out;
    }
    fd = memfd_create("ggml-executable", MFD_CLOEXEC);
    Elf64_Ehdr header = *eh;
    header.e_shoff = 0;
    header.e_shnum = 0;
    header.e_shstrndx = SHN_UNDEF;
    uint64_t flags;
    memcpy(&flags, image.bytes + flags_at, sizeof flags);
    flags &= ~(uint64_t)DF_1_PIE;
    if (fd < 0 || !write_all(fd, image.bytes, (size_t)end) ||
        pwrite(fd, &header, sizeof header, 0) != (ssize_t)sizeof header ||
        pwrite(fd, &flags, sizeof flags, (off_t)flags_at) != (ssize_t)sizeof flags ||
        !hide_copied_symbols(&image, eh, fd)) {
        snprintf(why, why_len, "cannot copy %s into memory", path);
        goto out;
    }
    initialise_libstdcxx();
    char fd_path[64];
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", fd);
    handle = dlopen(fd_path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *error = dlerror();
        snprintf(why, why_len, "cannot load a copy of %s: %s", path, error != NULL ? error : "unknown dlopen error");
        goto out;
    }
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL) {
        snprintf(why, why_len, "the dynamic linker did not say where it loaded %s", path);
        handle = NULL;
        goto out;
    }
    *bias = (uintptr_t)map->l_addr;
out:
    if (fd >= 0) {
        close(fd);
    }
    unmap_file(&image);
    return handle;
}

long pi_symtab_functions(const char *path, const char *const *names, size_t n, uintptr_t *values)
{
    memset(values, 0, n * sizeof *values);
    struct pi_image image = { 0 };
    if (!map_file(path, &image)) {
        return -1;
    }
    long found = -1;
    const Elf64_Ehdr *eh = elf_header(&image);
    const Elf64_Shdr *sh = eh != NULL ? records(&image, eh->e_shoff, eh->e_shnum, sizeof(Elf64_Shdr)) : NULL;
    for (size_t i = 0; sh != NULL && i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) {
            continue;
        }
        const Elf64_Shdr *strtab = &sh[sh[i].sh_link];
        uint64_t count = sh[i].sh_size / sizeof(Elf64_Sym);
        const Elf64_Sym *syms = records(&image, sh[i].sh_offset, count, sizeof(Elf64_Sym));
        const char *strings = records(&image, strtab->sh_offset, strtab->sh_size, 1);
        if (syms == NULL || strings == NULL) {
            continue;
        }
        found = 0;
        for (uint64_t s = 0; s < count; s++) {
            unsigned type = ELF64_ST_TYPE(syms[s].st_info);
            if ((type != STT_FUNC && type != STT_GNU_IFUNC) || syms[s].st_shndx == SHN_UNDEF ||
                syms[s].st_name >= strtab->sh_size) {
                continue;
            }
            const char *name = strings + syms[s].st_name;
            size_t room = strtab->sh_size - syms[s].st_name;
            for (size_t k = 0; k < n; k++) {
                if (values[k] == 0 && strncmp(name, names[k], room) == 0 && strnlen(name, room) < room) {
                    values[k] = (uintptr_t)syms[s].st_value;
                    found++;
                }
            }
        }
    }
    unmap_file(&image);
    return found;
}
