// SPDX-License-Identifier: Apache-2.0
// Following the target's libraries: what it has mapped now and what it maps later (the dynamic
// linker's hook stops it after each dlopen), which of them are llama.cpp's and ggml's, and of a
// folder of dynamically loaded CPU backend variants the one ggml will compute with.
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { scoreCpuVariants } from "../discovery/layout.js";
import {
  carriesGgml,
  classifyLibrary,
  mappedFiles,
  type LibraryRoles,
} from "../discovery/libraries.js";
import { layoutProbePath } from "./nativeTracer.js";

export interface NewLibraries {
  /** dynamic linkers (their hook tells when a library was loaded) */
  dynamicLinkers: LibraryRoles[];
  /** llama.cpp and ggml libraries, ggml's base library first (its layout is needed first) */
  found: LibraryRoles[];
}

export class LibraryFollower {
  private readonly examined = new Set<string>();
  private readonly chosenVariants = new Map<string, string | null>();
  /** the llama.cpp and ggml libraries found so far */
  readonly libraries: LibraryRoles[] = [];
  /**
   * the process's executable when it carries ggml but has no symbol table: a llama.cpp linked
   * into one executable exports nothing, so once stripped nothing in it can be found
   */
  strippedExecutable: string | null = null;

  constructor(
    private readonly pid: number,
    private readonly warn: (message: string) => void,
  ) {}

  /** What the process mapped since the last look; nothing once it is gone. */
  scan(): NewLibraries {
    const out: NewLibraries = { dynamicLinkers: [], found: [] };
    let files: string[];
    try {
      files = mappedFiles(this.pid);
    } catch {
      return out;
    }
    let executable: string | null = null;
    try {
      executable = readlinkSync(`/proc/${this.pid}/exe`);
    } catch {
      // gone
    }
    for (const path of files) {
      if (this.examined.has(path)) continue;
      this.examined.add(path);
      const roles = classifyLibrary(path);
      if (!roles) continue;
      if (
        path === executable &&
        !roles.hasSymbolTable &&
        !roles.llama &&
        !roles.ggmlBase &&
        carriesGgml(path)
      )
        this.strippedExecutable = path;
      if (roles.dynamicLinker) out.dynamicLinkers.push(roles);
      if (roles.ggmlCpu && !this.isChosenCpuVariant(path)) continue;
      const backend =
        roles.ggmlRegistry || roles.backendCalls.length + roles.asyncCopies.length > 0;
      if (roles.llama || roles.ggmlBase || roles.ggmlCpu || backend) out.found.push(roles);
    }
    out.found.sort((a, b) => Number(b.ggmlBase) - Number(a.ggmlBase));
    this.libraries.push(...out.found);
    return out;
  }

  /**
   * A build with dynamically loaded backends (node-llama-cpp, GGML_BACKEND_DL) dlopens every
   * libggml-cpu-<variant>.so of its folder to ask its score and keeps the best. Only that one
   * will compute, so only that one is probed: thousands of probes on the others would cost their
   * detach time for nothing.
   */
  private isChosenCpuVariant(path: string): boolean {
    const match = /^(.*)\/libggml-cpu-[^/]+\.so$/.exec(path);
    if (!match) return true;
    const dir = match[1]!;
    let best: string | null | undefined = this.chosenVariants.get(dir);
    if (best === undefined) {
      best = null;
      try {
        const variants = readdirSync(dir)
          .filter((f) => /^libggml-cpu-[^/]+\.so$/.test(f))
          .map((f) => join(dir, f));
        let top = 0;
        for (const [variant, score] of scoreCpuVariants(layoutProbePath, variants)) {
          if (score > top) [best, top] = [variant, score];
        }
      } catch (error) {
        this.warn(`${(error as Error).message}; probing every CPU variant in ${dir}`);
      }
      this.chosenVariants.set(dir, best);
    }
    return best === null || best === path;
  }
}
