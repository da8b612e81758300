// SPDX-License-Identifier: Apache-2.0
// The run count and run time the kernel keeps for each BPF program while kernel.bpf_stats_enabled
// is set, read with bpftool for the programs a process holds. A program's own time, not the uprobe
// trap around it; unlike t/s it hardly moves when other programs load the machine.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const STATS = "/proc/sys/kernel/bpf_stats_enabled";

/** bpftool's path; undefined where it is not installed */
export const bpftool = ["/usr/sbin/bpftool", "/usr/bin/bpftool"].find((p) => existsSync(p));

/** `fn()` with the kernel's BPF statistics on, set back as they were after */
export async function withBpfStats(fn) {
  const before = readFileSync(STATS, "utf8").trim();
  writeFileSync(STATS, "1");
  try {
    return await fn();
  } finally {
    writeFileSync(STATS, before);
  }
}

function programIdsOf(pid) {
  const ids = new Set();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
      const m = /^prog_id:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
      if (m) ids.add(Number(m[1]));
    }
  } catch {
    // the process is gone
  }
  return ids;
}

/** { name, runs, ns } of each BPF program that process `pid` holds and that has run */
function programRuns(pid) {
  const runs = [];
  for (const id of programIdsOf(pid)) {
    const r = spawnSync(bpftool, ["prog", "show", "id", String(id), "-j"], { encoding: "utf8" });
    if (r.status !== 0) continue;
    const p = JSON.parse(r.stdout);
    if (p.run_cnt) runs.push({ name: p.name, runs: p.run_cnt, ns: p.run_time_ns });
  }
  return runs;
}

/** name -> mean run time (ns) of each BPF program that process `pid` holds */
export const programNsOf = (pid) =>
  Object.fromEntries(programRuns(pid).map((p) => [p.name, p.ns / p.runs]));

/**
 * name -> { runs, ns } of the programs in `names` that process `pid` holds, polled until `exited`
 * settles: the programs go with the process, so the last reading before it exits is the total.
 */
export async function pollProgramRuns(pid, exited, names) {
  const best = {};
  let running = true;
  exited.then(() => (running = false));
  while (running) {
    for (const p of programRuns(pid)) {
      if (names.includes(p.name) && (!best[p.name] || best[p.name].runs < p.runs))
        best[p.name] = { runs: p.runs, ns: p.ns };
    }
    await sleep(300);
  }
  return best;
}
