// SPDX-License-Identifier: Apache-2.0
// Reading the machine's files where a missing or unreadable one is an answer (null), not an
// error: /proc, /sys and the set-up cache, as doctor and the machine profile read them.
import { readdirSync, readFileSync } from "node:fs";

/** File contents, or null when it cannot be read. */
export function readTextOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** Entry names, or null when the folder cannot be read. */
export function listDirOrNull(path: string): string[] | null {
  try {
    return readdirSync(path);
  } catch {
    return null;
  }
}
