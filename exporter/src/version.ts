// SPDX-License-Identifier: Apache-2.0
import { createRequire } from "node:module";

/** profinfer's version: the exporter package's own (src/ and dist/ are both one level below it). */
export const VERSION = (createRequire(import.meta.url)("../package.json") as { version: string })
  .version;
