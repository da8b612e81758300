// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { UserError } from "../errors.js";
import {
  AUTO_HARDWARE,
  AUTO_SOFTWARE,
  BACKEND_STALL_KEYWORD,
  PerfType,
  hasCorePmu,
  resolveCounters,
  splitEventList,
} from "./counters.js";

// A sysfs tree shaped like /sys/bus/event_source/devices: an x86 core PMU and an arm one.
const root = mkdtempSync(join(tmpdir(), "profinfer-pmu-"));
after(() => rmSync(root, { recursive: true, force: true }));
function pmu(
  name: string,
  type: number,
  format: Record<string, string>,
  events: Record<string, string> = {},
) {
  mkdirSync(join(root, name, "format"), { recursive: true });
  mkdirSync(join(root, name, "events"), { recursive: true });
  writeFileSync(join(root, name, "type"), `${type}\n`);
  for (const [k, v] of Object.entries(format))
    writeFileSync(join(root, name, "format", k), `${v}\n`);
  for (const [k, v] of Object.entries(events))
    writeFileSync(join(root, name, "events", k), `${v}\n`);
}
pmu(
  "cpu",
  4,
  {
    event: "config:0-7",
    umask: "config:8-15",
    cmask: "config:24-31",
    inv: "config:23",
    ldlat: "config1:0-15",
  },
  {
    "mem-loads": "event=0xcd,umask=0x1,ldlat=3",
  },
);
pmu(
  "armv8_pmuv3_0",
  10,
  { event: "config:0-15", long: "config1:0" },
  { mem_access: "event=0x0013" },
);
const empty = mkdtempSync(join(tmpdir(), "profinfer-nopmu-"));
mkdirSync(join(empty, "software"));
writeFileSync(join(empty, "software", "type"), "1\n");
after(() => rmSync(empty, { recursive: true, force: true }));

test("generic hardware and software events map to their perf types and configs", () => {
  const { counters, unavailable } = resolveCounters(
    "cycles,instructions,stalled-cycles-backend,task-clock,cs",
    root,
  );
  assert.deepEqual(unavailable, []);
  assert.deepEqual(
    counters.map((c) => [c.name, c.type, c.config, c.hardware]),
    [
      ["cycles", PerfType.HARDWARE, 0n, true],
      ["instructions", PerfType.HARDWARE, 1n, true],
      ["stalled-cycles-backend", PerfType.HARDWARE, 8n, true],
      ["task-clock", PerfType.SOFTWARE, 1n, false],
      ["context-switches", PerfType.SOFTWARE, 3n, false],
    ],
  );
});

test("perf's aliases are recorded under one name, so rules and derived figures see one event", () => {
  const { counters } = resolveCounters(
    "cpu-cycles,branches,idle-cycles-backend,idle-cycles-frontend,faults,migrations",
    root,
  );
  assert.deepEqual(
    counters.map((c) => [c.name, c.type, c.config]),
    [
      ["cycles", PerfType.HARDWARE, 0n],
      ["branch-instructions", PerfType.HARDWARE, 4n],
      ["stalled-cycles-backend", PerfType.HARDWARE, 8n],
      ["stalled-cycles-frontend", PerfType.HARDWARE, 7n],
      ["page-faults", PerfType.SOFTWARE, 2n],
      ["cpu-migrations", PerfType.SOFTWARE, 4n],
    ],
  );
});

test("PMU terms are placed at the bits format/ names, in config and config1", () => {
  const [c] = resolveCounters("cpu/event=0x3c,umask=0x01,cmask=2,inv/", root).counters;
  assert.equal(c!.type, 4);
  assert.equal(c!.config, 0x3cn | (0x01n << 8n) | (2n << 24n) | (1n << 23n));
  const [loads] = resolveCounters("cpu/mem-loads/", root).counters;
  assert.equal(loads!.config, 0xcdn | (0x1n << 8n));
  assert.equal(loads!.config1, 3n);
  const [arm] = resolveCounters("armv8_pmuv3_0/mem_access/", root).counters;
  assert.deepEqual([arm!.type, arm!.config, arm!.hardware], [10, 0x13n, true]);
});

test("commas inside a PMU event do not split the list", () => {
  assert.deepEqual(splitEventList("cycles,cpu/event=0x3c,umask=0x00/,r01c2"), [
    "cycles",
    "cpu/event=0x3c,umask=0x00/",
    "r01c2",
  ]);
  const { counters } = resolveCounters("cycles,cpu/event=0x3c,umask=0x00/,r01c2", root);
  assert.deepEqual(
    counters.map((c) => [c.name, c.type, c.config]),
    [
      ["cycles", 0, 0n],
      ["cpu/event=0x3c,umask=0x00/", 4, 0x3cn],
      ["r01c2", PerfType.RAW, 0x1c2n],
    ],
  );
});

test("auto takes the hardware set where a core PMU exists, software events elsewhere", () => {
  assert.equal(hasCorePmu(root), true);
  assert.equal(hasCorePmu(empty), false);
  // a CPU without a formula of its own: backend-stall stands for the generic events
  const unknown = { vendor: null, family: null, model: null, pmus: {} };
  assert.deepEqual(
    resolveCounters("auto", root, unknown).counters.map((c) => c.name),
    AUTO_HARDWARE.flatMap((n) => (n === BACKEND_STALL_KEYWORD ? ["stalled-cycles-backend"] : [n])),
  );
  assert.deepEqual(
    resolveCounters("auto", empty).counters.map((c) => c.name),
    AUTO_SOFTWARE,
  );
});

test("a PMU this machine lacks is unavailable with the reason, not an error", () => {
  const { counters, unavailable } = resolveCounters("task-clock,cpu/event=0x3c/", empty);
  assert.deepEqual(
    counters.map((c) => c.name),
    ["task-clock"],
  );
  assert.equal(unavailable.length, 1);
  assert.match(unavailable[0]!.reason, /no PMU named 'cpu' \(.* holds: software\)/);
});

test("bad input is a UserError that says what is accepted", () => {
  const cases: [string, RegExp][] = [
    ["bogus", /unknown event 'bogus'. Give a perf event: cycles/],
    ["r12xz", /'r12xz' is not a raw event: a raw event is 'r' and the event code in hex/],
    ["r", /'r' is not a raw event/],
    ["cpu/event=0x3c", /not a PMU event: write PMU\/TERMS\//],
    [
      "cpu/frobnicate=1/",
      /has no field 'frobnicate' \(its fields: cmask, event, inv, ldlat, umask\)/,
    ],
    [
      "cpu/nosuch/",
      /'nosuch' is neither an event of this PMU nor one of its fields \(its events: mem-loads\)/,
    ],
    ["cpu/event=0x1ff/", /event=511 does not fit the field's bits/],
    ["cpu/event=zz/", /the term 'event=zz' is not NAME or NAME=VALUE/],
    ["cycles:u", /event modifiers/],
    ["cycles,cycles", /names 'cycles' twice/],
    [
      "cycles,cpu-cycles",
      /names 'cycles' twice: 'cycles' and 'cpu-cycles' are the same perf event/,
    ],
    ["", /at least one event/],
  ];
  for (const [list, message] of cases) {
    assert.throws(
      () => resolveCounters(list, root),
      (e: Error) => e instanceof UserError && message.test(e.message),
      list,
    );
  }
});
