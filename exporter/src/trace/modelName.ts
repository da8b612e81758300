// SPDX-License-Identifier: Apache-2.0
// Which model a run ran, by the one name every output gives it (span attributes, the resource,
// the report's title, the metrics' `model` label): the GGUF's general.name, else its file name.
import { basename, isAbsolute, join } from "node:path";
import type { RunHeader } from "./header.js";
import type { ModelEntry, NoteRecord, RunNote } from "./notes.js";

/** The -m / --model argument of a command line, resolved against `cwd` when relative. */
export function modelArgument(command: readonly string[], cwd: string | null): string | null {
  for (let i = 0; i < command.length; i++) {
    const arg = command[i]!;
    let value: string | undefined;
    if (arg === "-m" || arg === "--model") value = command[i + 1];
    else if (arg.startsWith("--model=")) value = arg.slice("--model=".length);
    if (value) return isAbsolute(value) || !cwd ? value : join(cwd, value);
  }
  return null;
}

const fileName = (path: string) => basename(path).replace(/\.gguf$/i, "");

/**
 * The model's name: the first noted model's general.name, else its file name without .gguf,
 * else the file name of the command's -m argument; null when neither says.
 */
export function modelName(
  models: readonly ModelEntry[],
  command: readonly string[],
): string | null {
  const model = models[0];
  if (model?.name) return model.name;
  if (model) return fileName(model.path);
  const argument = modelArgument(command, null);
  return argument ? fileName(argument) : null;
}

/** The models of the run's model note (none before the target's first llama_decode). */
export function notedModels(notes: readonly (RunNote | NoteRecord)[]): ModelEntry[] {
  for (const n of notes) {
    const note = "note" in n ? n.note : n;
    if (note.kind === "model") return note.models;
  }
  return [];
}

/**
 * The name a run's outputs give its model (spans, resource, report, and the metrics' label as
 * record and attach resolve it before the target runs): --model when it was given (kept in the
 * header), else modelName of the model note, else of the command line.
 */
export function modelNameOfRun(
  header: Pick<RunHeader, "resource" | "target">,
  notes: readonly (RunNote | NoteRecord)[],
): string | null {
  return header.resource?.model ?? modelName(notedModels(notes), header.target.command);
}
