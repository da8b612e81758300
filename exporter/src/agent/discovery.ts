// SPDX-License-Identifier: Apache-2.0
// Whether a process runs llama.cpp, from the files it maps: the library (or program) that defines
// llama_decode, and the dynamic linker whose hook tells when it loads more. Each file is read
// once, by its identity (device:inode), however many processes map it; only the files that can
// hold llama.cpp are read at all (a name with "llama" in it, or the program itself, for a build
// that links llama.cpp in), so a host's other processes cost one read of their maps.
import { existsSync } from "node:fs";
import { basename } from "node:path";
import { ElfFormatError, namesSymbol } from "../discovery/elf.js";
import { classifyLibrary, mappedObjects, type LibraryRoles } from "../discovery/libraries.js";

/** A file of a process as the agent attaches to it: through the process's own root. */
export interface ProcessFile {
  fileId: string;
  roles: LibraryRoles;
}

export type Verdict =
  /** llama_decode is in `library` */
  | { kind: "llama"; library: ProcessFile }
  /** nothing of llama.cpp is mapped (yet) */
  | { kind: "none" }
  /** a library named as llama.cpp's is mapped, but defines no llama_decode (stripped, or not it) */
  | { kind: "no-symbols"; path: string };

export interface ProcessFiles {
  /** the dynamic linkers it maps (their hook tells of each library it loads) */
  linkers: ProcessFile[];
  verdict: Verdict;
}

const LLAMA_NAME = /llama/i;
const LINKER_NAME = /^ld[-.].*\.so/;

export class FileCatalog {
  /** what each file offers, by file id; null: not ELF, or nothing of interest */
  private readonly known = new Map<string, LibraryRoles | null>();

  /** How many files were read (each once). */
  get filesRead(): number {
    return this.known.size;
  }

  /** What process `pid` maps now; null when it is gone. */
  examine(pid: number): ProcessFiles | null {
    let objects;
    let executable = "";
    try {
      objects = mappedObjects(pid);
    } catch {
      return null;
    }
    // the program file is the first mapping of /proc/PID/maps
    executable = objects[0]?.path ?? "";
    const out: ProcessFiles = { linkers: [], verdict: { kind: "none" } };
    for (const { path, fileId } of objects) {
      const name = basename(path);
      const linker = LINKER_NAME.test(name);
      if (!linker && !LLAMA_NAME.test(name) && path !== executable) continue;
      const roles = this.roles(pid, path, fileId, linker || LLAMA_NAME.test(name));
      if (roles?.dynamicLinker) out.linkers.push({ fileId, roles });
      if (roles?.llama && out.verdict.kind !== "llama") {
        out.verdict = { kind: "llama", library: { fileId, roles } };
      } else if (!roles?.llama && LLAMA_NAME.test(name) && /\.so(\.|$)/.test(name)) {
        if (out.verdict.kind === "none") out.verdict = { kind: "no-symbols", path };
      }
    }
    return out;
  }

  /** A file's roles, read through the process's root (its mount namespace: a container's files). */
  private roles(pid: number, path: string, fileId: string, named: boolean): LibraryRoles | null {
    if (!this.known.has(fileId)) {
      const file = `/proc/${pid}/root${path}`;
      try {
        // a program not named as llama.cpp is read whole only when it names llama_decode
        const candidate = named || namesSymbol(file, "llama_decode");
        const roles = candidate ? classifyLibrary(file) : null;
        // classifyLibrary says null for a file it could not read: the process may have gone
        if (roles === null && !existsSync(`/proc/${pid}/exe`)) return null;
        this.known.set(fileId, roles);
      } catch (error) {
        // not ELF: nothing to learn from it, ever; but a process that exited while its file was
        // read (its root went with it) makes any read fail, the file is not known yet
        if (error instanceof ElfFormatError && existsSync(`/proc/${pid}/exe`))
          this.known.set(fileId, null);
        return null;
      }
    }
    const roles = this.known.get(fileId) ?? null;
    // the path through this process's root: the file stays reachable while this process lives
    return roles ? { ...roles, path: `/proc/${pid}/root${path}` } : null;
  }
}
