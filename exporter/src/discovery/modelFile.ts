// SPDX-License-Identifier: Apache-2.0
// Which GGUF model a llama.cpp process runs: the .gguf files it has mapped (llama.cpp mmaps its
// model by default), else the -m / --model argument of its command line (--no-mmap). Read once,
// when its first llama_decode is seen (the model is loaded by then), and kept in the run as a
// "model" note so that replay knows it too.
import { closeSync, openSync, readSync, readlinkSync, statSync } from "node:fs";
import { readGgufMetadata } from "../gguf/reader.js";
import { modelArgument } from "../trace/modelName.js";
import type { ModelEntry } from "../trace/notes.js";
import { mappedFiles } from "./libraries.js";

/** A model file as the run's model note holds it. */
export type ModelFileInfo = ModelEntry;

function isGguf(path: string): boolean {
  let fd: number | null = null;
  try {
    fd = openSync(path, "r");
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString("latin1") === "GGUF";
  } catch {
    return false;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function describe(path: string): ModelFileInfo {
  const info: ModelFileInfo = { path, name: null, architecture: null, sizeBytes: 0 };
  try {
    info.sizeBytes = statSync(path).size;
    // only the two keys: reading the whole header (a large vocabulary) takes CPU the target needs,
    // and this runs while it decodes
    const { metadata } = readGgufMetadata(path, ["general.name", "general.architecture"]);
    const name = metadata.get("general.name")?.value;
    const arch = metadata.get("general.architecture")?.value;
    if (typeof name === "string" && name) info.name = name;
    if (typeof arch === "string" && arch) info.architecture = arch;
  } catch {
    // unreadable or not GGUF after all: the path alone still says which model it was
  }
  return info;
}

/** The GGUF models process `pid` runs (usually one), mapped files first. */
export function modelsOfProcess(pid: number, command: readonly string[]): ModelFileInfo[] {
  let paths: string[] = [];
  try {
    paths = mappedFiles(pid).filter((p) => isGguf(p));
  } catch {
    // the process is gone
  }
  if (paths.length === 0) {
    let cwd: string | null = null;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // gone, or not ours to read
    }
    return modelsOfCommand(command, cwd);
  }
  return paths.map(describe);
}

/** The GGUF model a command line names with -m / --model (a relative path against `cwd`). */
export function modelsOfCommand(
  command: readonly string[],
  cwd: string | null = process.cwd(),
): ModelFileInfo[] {
  const arg = modelArgument(command, cwd);
  return arg && isGguf(arg) ? [describe(arg)] : [];
}
