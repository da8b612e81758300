// SPDX-License-Identifier: Apache-2.0
// The TypeScript reading of bpf/profinfer.h (events.ts, constants.ts) against the header itself:
// the C compiler prints every offset, size, enum value and constant, and they must agree.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { DROP_REASONS } from "@profinfer/contract";
import {
  AGG_BUCKETS,
  AGG_STEP,
  AGG_UNPROBED,
  AggPhase,
  BATCH_SEQ_BUCKETS,
  BATCH_TOKEN_BUCKETS,
  RequestFlag,
  BatchFlag,
  MAX_BATCH_TOKENS,
  MAX_TOKEN_SEQS,
  DROP_COUNTERS,
  DROP_REASON_COUNT,
  EV_LIBRARY,
  EV_PROCESS_EXEC,
  EV_PROCESS_EXIT,
  MAX_TARGETS,
  HIT_COUNTERS,
  HIT_KIND_COUNT,
  NO_LAYER,
  OP_BY_TENSOR,
  OP_NO_AGGREGATE,
  PiLevel,
  STEP_FINAL,
  STEP_REGISTERS,
  stepKeyParts,
} from "./constants.js";
import {
  EVENT_ABI,
  EVENT_SIZES,
  EVENT_STRUCTS,
  CopyVia,
  EventType,
  GraphFn,
  LAYOUT,
  PI_MAX_BATCH_SEQS,
  PI_MAX_COUNTERS,
  PI_MAX_MOE_IDS,
  PI_MAX_NAME,
  PI_MAX_SRC,
  PI_NODES_PER_CHUNK,
  PI_STEPS_PER_BATCH,
  STEPS_RECORD,
} from "./events.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const dir = mkdtempSync(join(tmpdir(), "profinfer-abi-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function hasCompiler(): boolean {
  try {
    execFileSync("cc", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Compiles a program printing `name value` lines with bpf/profinfer.h, and reads them back. */
function printedByC(name: string, statements: string[]): Map<string, string> {
  const source = join(dir, `${name}.c`);
  writeFileSync(
    source,
    `#include <stddef.h>\n#include <stdio.h>\n#include "profinfer.h"\n` +
      `int main(void) {\n${statements.join("\n")}\nreturn 0;\n}\n`,
  );
  const binary = join(dir, name);
  execFileSync("cc", ["-std=c11", "-I", join(repoRoot, "bpf"), "-o", binary, source]);
  return new Map(
    execFileSync(binary, { encoding: "utf8" })
      .trim()
      .split("\n")
      .map((l) => l.split(" ") as [string, string]),
  );
}

test("the struct sizes are the table of docs/raw-events.md", () => {
  const doc = readFileSync(join(repoRoot, "docs/raw-events.md"), "utf8");
  const rows = [
    ...doc.matchAll(/^\| (\d+) `PI_EV_\w+`(?:, (\d+) `PI_EV_\w+`)? \| `(\w+)` \| (\d+) \|$/gm),
  ];
  assert.equal(rows.length, 19, "rows of the size table");
  const documented = new Map<number, [string, number]>();
  for (const [, a, b, struct, size] of rows) {
    documented.set(Number(a), [struct!, Number(size)]);
    if (b) documented.set(Number(b), [struct!, Number(size)]);
  }
  assert.deepEqual(
    [...documented.keys()].sort((x, y) => x - y),
    [...Object.values(EventType), STEPS_RECORD].sort((x, y) => x - y),
  );
  assert.deepEqual(documented.get(STEPS_RECORD), ["pi_steps", LAYOUT.pi_steps.size]);
  documented.delete(STEPS_RECORD);
  for (const [type, [struct, size]] of documented) {
    assert.equal(EVENT_STRUCTS[type as keyof typeof EVENT_STRUCTS], struct, `type ${type}`);
    assert.equal(EVENT_SIZES[type as keyof typeof EVENT_SIZES], size, `size of ${struct}`);
  }
});

test("every offset and size agrees with the C compiler on bpf/profinfer.h", (t) => {
  if (!hasCompiler()) {
    t.skip("no C compiler (cc) on this machine");
    return;
  }
  const lines: string[] = [];
  for (const [struct, fields] of Object.entries(LAYOUT)) {
    lines.push(`printf("${struct}.size %zu\\n", sizeof(struct ${struct}));`);
    for (const field of Object.keys(fields)) {
      if (field === "size") continue;
      lines.push(`printf("${struct}.${field} %zu\\n", offsetof(struct ${struct}, ${field}));`);
    }
  }
  const printed = printedByC("layout", lines);
  for (const [struct, fields] of Object.entries(LAYOUT)) {
    for (const [field, value] of Object.entries(fields)) {
      assert.equal(Number(printed.get(`${struct}.${field}`)), value, `${struct}.${field}`);
    }
  }
});

test("every enum value and constant user space reads agrees with bpf/profinfer.h", (t) => {
  if (!hasCompiler()) {
    t.skip("no C compiler (cc) on this machine");
    return;
  }
  const expected = new Map<string, number>([
    ["PI_EVENT_ABI", EVENT_ABI],
    ["PI_MAX_SRC", PI_MAX_SRC],
    ["PI_MAX_NAME", PI_MAX_NAME],
    ["PI_NODES_PER_CHUNK", PI_NODES_PER_CHUNK],
    ["PI_MAX_MOE_IDS", PI_MAX_MOE_IDS],
    ["PI_MAX_COUNTERS", PI_MAX_COUNTERS],
    ["PI_STEPS_PER_BATCH", PI_STEPS_PER_BATCH],
    ["PI_MAX_BATCH_SEQS", PI_MAX_BATCH_SEQS],
    ["PI_MAX_BATCH_TOKENS", MAX_BATCH_TOKENS],
    ["PI_MAX_TOKEN_SEQS", MAX_TOKEN_SEQS],
    ["PI_BATCH_POS", BatchFlag.POS],
    ["PI_BATCH_SEQ_ID", BatchFlag.SEQ_ID],
    ["PI_BATCH_OUTPUTS", BatchFlag.OUTPUTS],
    ["PI_BATCH_EMBD", BatchFlag.EMBD],
    ["PI_EV_STEPS", STEPS_RECORD],
    ["PI_EV_LIBRARY", EV_LIBRARY],
    ["PI_EV_PROCESS_EXEC", EV_PROCESS_EXEC],
    ["PI_EV_PROCESS_EXIT", EV_PROCESS_EXIT],
    ["PI_MAX_TARGETS", MAX_TARGETS],
    ["PI_LEVEL_TOKEN", PiLevel.TOKEN],
    ["PI_LEVEL_GRAPH", PiLevel.GRAPH],
    ["PI_LEVEL_OP", PiLevel.OP],
    ["PI_GRAPH_SCHED", GraphFn.SCHED],
    ["PI_GRAPH_CPU", GraphFn.CPU],
    ["PI_GRAPH_SPLIT", GraphFn.SPLIT],
    ["PI_COPY_SYNC", CopyVia.SYNC],
    ["PI_COPY_ASYNC", CopyVia.ASYNC],
    ["PI_STEP_FINAL", STEP_FINAL],
    ["PI_OP_NO_AGGREGATE", OP_NO_AGGREGATE],
    ["PI_OP_BY_TENSOR", OP_BY_TENSOR],
    ["PI_AGG_UNPROBED", AGG_UNPROBED],
    ["PI_AGG_STEP", AGG_STEP],
    ["PI_NO_LAYER", NO_LAYER],
    ["PI_AGG_BUCKETS", AGG_BUCKETS],
    ["PI_PHASE_PREFILL", AggPhase.PREFILL],
    ["PI_PHASE_DECODE", AggPhase.DECODE],
    ["PI_PHASE_MIXED", AggPhase.MIXED],
    ["PI_PHASES", Object.keys(AggPhase).length],
    ["PI_BATCH_TOKEN_BUCKETS", BATCH_TOKEN_BUCKETS],
    ["PI_BATCH_SEQ_BUCKETS", BATCH_SEQ_BUCKETS],
    ["PI_REQUEST_TRUNCATED", RequestFlag.TRUNCATED],
    ["PI_REQUEST_JOINED", RequestFlag.JOINED],
    ["PI_DROP_REASONS", DROP_REASON_COUNT],
    ["PI_HIT_KINDS", HIT_KIND_COUNT],
  ]);
  const names: Record<number, string> = {
    [EventType.TOKEN_BEGIN]: "PI_EV_TOKEN_BEGIN",
    [EventType.TOKEN_END]: "PI_EV_TOKEN_END",
    [EventType.GRAPH_BEGIN]: "PI_EV_GRAPH_BEGIN",
    [EventType.GRAPH_END]: "PI_EV_GRAPH_END",
    [EventType.GRAPH_NODES]: "PI_EV_GRAPH_NODES",
    [EventType.TENSOR]: "PI_EV_TENSOR",
    [EventType.OP_BEGIN]: "PI_EV_OP_BEGIN",
    [EventType.OP_END]: "PI_EV_OP_END",
    [EventType.BARRIER_BEGIN]: "PI_EV_BARRIER_BEGIN",
    [EventType.BARRIER_END]: "PI_EV_BARRIER_END",
    [EventType.SCHED_SWITCH]: "PI_EV_SCHED_SWITCH",
    [EventType.SCHED_WAKEUP]: "PI_EV_SCHED_WAKEUP",
    [EventType.MOE_IDS]: "PI_EV_MOE_IDS",
    [EventType.STEP]: "PI_EV_STEP",
    [EventType.BATCH]: "PI_EV_BATCH",
    [EventType.SPLIT]: "PI_EV_SPLIT",
    [EventType.COPY_BEGIN]: "PI_EV_COPY_BEGIN",
    [EventType.COPY_END]: "PI_EV_COPY_END",
    [EventType.SYNC_BEGIN]: "PI_EV_SYNC_BEGIN",
    [EventType.SYNC_END]: "PI_EV_SYNC_END",
    [EventType.BACKEND_CALL_BEGIN]: "PI_EV_BACKEND_CALL_BEGIN",
    [EventType.BACKEND_CALL_END]: "PI_EV_BACKEND_CALL_END",
  };
  for (const value of Object.values(EventType)) expected.set(names[value]!, value);
  STEP_REGISTERS.forEach((reg, i) => expected.set(`PI_STEP_${reg}`, i));
  DROP_COUNTERS.forEach((d, i) => expected.set(d.c, i));
  HIT_COUNTERS.forEach((h, i) => expected.set(h.c, i));
  const printed = printedByC(
    "constants",
    [...expected.keys()].map((name) => `printf("${name} %llu\\n", (unsigned long long)(${name}));`),
  );
  for (const [name, value] of expected) assert.equal(Number(printed.get(name)), value, name);
  assert.equal(DROP_COUNTERS.length, DROP_REASON_COUNT);
  assert.equal(HIT_COUNTERS.length, HIT_KIND_COUNT);
  assert.equal(DROP_REASONS.length, DROP_REASON_COUNT, "a metrics label for each drop counter");
});

test("a step's aggregate key comes apart into its ops and kind", () => {
  assert.deepEqual(stepKeyParts(AGG_STEP + 5 + (7 << 8) + (3 << 16)), {
    op: 5,
    second: 6,
    kind: 2,
  });
  assert.deepEqual(stepKeyParts(AGG_STEP + 9), { op: 9, second: null, kind: null });
  assert.equal(stepKeyParts(AGG_UNPROBED), null);
  assert.equal(stepKeyParts(12), null);
});
