#!/usr/bin/env -S node --no-memory-reducer --expose-gc
// SPDX-License-Identifier: Apache-2.0
// The `profinfer` command that npm links into node_modules/.bin. It is kept in git, apart from the
// built CLI, because npm links a package's bin when it installs the package, before the build
// exists: a bin pointing into dist/ would be skipped on a fresh clone, and `npx profinfer` would
// find nothing. The flags on the first line are the built CLI's own (see src/cli.ts).
try {
  await import("../dist/cli.js");
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("dist/cli.js"))
    throw error;
  const root = new URL("../..", import.meta.url).pathname;
  process.stderr.write(
    `profinfer: the CLI is not built yet. In ${root} run 'npm run demo' (set-up, build and a demo) or 'node scripts/setup.mjs && npm run build'.\n`,
  );
  process.exit(2);
}
