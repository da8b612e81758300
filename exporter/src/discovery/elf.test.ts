// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { namesSymbol, readElf } from "./elf.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-elf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("exported and local function symbols are found with their entry bytes", () => {
  const source = join(dir, "lib.c");
  writeFileSync(
    source,
    "int pi_exported(int x) { return x * 3 + 1; }\nstatic int pi_local(int x) { return x - 1; }\nint (*keep)(int) = pi_local;\n",
  );
  const library = join(dir, "libpi.so");
  const cc = spawnSync("cc", ["-O1", "-shared", "-fPIC", "-o", library, source], {
    encoding: "utf8",
  });
  assert.equal(cc.status, 0, cc.stderr);
  const elf = readElf(library);
  const exported = elf.symbols.get("pi_exported");
  assert.ok(exported?.isFunction && exported.exported);
  const local = elf.symbols.get("pi_local");
  assert.ok(local?.isFunction, "pi_local is in .symtab");
  assert.equal(local.exported, false);
  assert.equal(elf.hasSymbolTable, true);
  const entry = elf.bytesAt(exported.address, 4);
  assert.ok(entry && entry.length === 4);
  assert.equal(elf.bytesAt(0x7fffffff, 4), null);
});

test("a stripped library keeps only its exported symbols", () => {
  const source = join(dir, "lib2.c");
  writeFileSync(
    source,
    "int pi_api(void) { return 7; }\nstatic int hidden(void) { return 1; }\nint (*h)(void) = hidden;\n",
  );
  const library = join(dir, "libstripped.so");
  assert.equal(spawnSync("cc", ["-shared", "-fPIC", "-s", "-o", library, source]).status, 0);
  const elf = readElf(library);
  assert.equal(elf.hasSymbolTable, false);
  assert.ok(elf.symbols.get("pi_api")?.exported);
  assert.equal(elf.symbols.has("hidden"), false);
});

test("namesSymbol finds a symbol's name in the string tables without reading the symbols", () => {
  const source = join(dir, "named.c");
  writeFileSync(
    source,
    "int llama_decode(void) { return 0; }\nint other_thing(void) { return 1; }\n",
  );
  const library = join(dir, "libnamed.so");
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-o", library, source], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
  assert.equal(namesSymbol(library, "llama_decode"), true);
  assert.equal(namesSymbol(library, "other_thing"), true);
  assert.equal(namesSymbol(library, "llama_dec"), false, "a whole name, not a prefix");
  assert.equal(namesSymbol(library, "llama_decode_more"), false);
});
