// SPDX-License-Identifier: Apache-2.0
// Writes the provisioned dashboards as JSON (run by build.mjs: the JSON is built, never edited).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inferenceProfileDashboard } from "./inferenceProfile.js";

export const DASHBOARD_FILES = { "llama-cpp-inference-profile.json": inferenceProfileDashboard };

export function writeDashboards(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  return Object.entries(DASHBOARD_FILES).map(([file, build]) => {
    const path = join(dir, file);
    writeFileSync(path, JSON.stringify(build(), null, 2) + "\n");
    return path;
  });
}
