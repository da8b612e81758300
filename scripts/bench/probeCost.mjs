// SPDX-License-Identifier: Apache-2.0
// What one probe hit costs the probed thread on this machine, measured on a C loop rather than
// inferred from llama.cpp's tokens/s (which drift by more than the token and graph levels cost).
// profinfer's own token programs are loaded through the addon, as `record` does, and attached at
// the site `record` would choose to a function named llama_decode in a small program that times
// N calls of it: without probes, with the entry probe, with the entry and the return probe, in
// interleaved rounds. The parts section (parts.mjs) imports it.
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { median } from "./stats.mjs";

const LOOP_C = String.raw`
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* llama_batch's size and passing (by value, on the stack) */
struct batch {
  int32_t n_tokens;
  void *p[6];
};

__attribute__((noinline, noipa)) int32_t work(const struct batch *b) {
  __asm__ volatile("" ::: "memory");
  return b->n_tokens == 0;
}

/* not a leaf, so that with a frame pointer it starts with push, as llama.cpp's probed functions
   do: an instruction the kernel emulates */
__attribute__((noinline)) int32_t llama_decode(void *ctx, struct batch b) {
  return work(&b) + (ctx == 0);
}

/* one timed round per line on stdin: N calls, then the mean ns per call on stdout */
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  struct batch b = {1, {0}};
  char line[64];
  int32_t sink = 0;
  while (fgets(line, sizeof line, stdin)) {
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) sink += llama_decode(&b, b);
    clock_gettime(CLOCK_MONOTONIC, &z);
    printf("%.2f\n", ((z.tv_sec - a.tv_sec) * 1e9 + (z.tv_nsec - a.tv_nsec)) / (double)n);
    fflush(stdout);
  }
  return sink < 0;
}
`;

/**
 * Returns { site, rounds, calls, nsNone, nsEntry, nsBoth, entryNs, returnNs, programNs } where
 * entryNs is what an entry probe adds to a call (trap and decode_enter), returnNs what its return
 * probe adds on top (decode_exit), and programNs the programs' own run time (bpf_stats, when
 * `programStats` can read it), so that trap = entryNs - programNs.decode_enter.
 */
export async function measureProbeCost({ scratch, rounds = 15, calls = 100_000, programStats }) {
  const { loadNativeModule, kernelHasUprobeMulti, LEVELS, readElf, findProbeSite } =
    await import("@profinfer/exporter");

  const source = join(scratch, "probe-loop.c");
  const binary = join(scratch, "probe-loop");
  writeFileSync(source, LOOP_C);
  const cc = spawnSync("gcc", ["-O2", "-g", "-fno-omit-frame-pointer", "-o", binary, source], {
    encoding: "utf8",
  });
  if (cc.status !== 0) throw new Error(`gcc: ${cc.stderr}`);
  const site = findProbeSite(readElf(binary), "llama_decode");
  if (!site?.emulated) {
    throw new Error(
      `the probe loop's llama_decode starts with no emulated instruction: ${site?.instruction}`,
    );
  }

  const loop = spawn(binary, [String(calls)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: loop.stdout })[Symbol.asyncIterator]();
  const time = async () => {
    loop.stdin.write("\n");
    const { value, done } = await lines.next();
    if (done) throw new Error("the probe loop exited");
    return Number(value);
  };

  const native = loadNativeModule();
  const tracer = new native.Tracer({
    tgid: loop.pid,
    level: LEVELS.token,
    sampleEvery: 1,
    windowFirst: 0,
    windowLast: 0,
    opsWithoutTokens: true,
    moe: false,
    ringBufferBytes: 64 << 20,
    uprobeMulti: kernelHasUprobeMulti(release()),
    stream: true,
    aggregate: false,
    aggregateLayers: false,
    aggregateMoe: false,
    counters: [],
  });
  // the events are read and dropped, as record's reader would read them
  tracer.start(() => {});
  const attach = (handler) => {
    const error = tracer.attachUprobe(handler, binary, "llama_decode", 0, site.fileOffset);
    if (error) throw new Error(error);
  };
  const states = {
    none: () => {
      tracer.detachProgram("decode_enter");
      tracer.detachProgram("decode_exit");
    },
    entry: () => {
      states.none();
      attach("decode_enter");
    },
    both: () => {
      states.none();
      attach("decode_enter");
      attach("decode_exit");
    },
  };
  const ns = { none: [], entry: [], both: [] };
  try {
    await time(); // warm-up: page faults, frequency
    for (let round = 0; round < rounds; round++) {
      for (const state of Object.keys(states).sort(() => Math.random() - 0.5)) {
        states[state]();
        ns[state].push(await time());
      }
    }
    states.both();
    const programNs = programStats ? programStats(process.pid) : {};
    const [nsNone, nsEntry, nsBoth] = [ns.none, ns.entry, ns.both].map(median);
    return {
      site,
      rounds,
      calls,
      nsNone,
      nsEntry,
      nsBoth,
      entryNs: nsEntry - nsNone,
      returnNs: nsBoth - nsEntry,
      programNs,
    };
  } finally {
    tracer.stop();
    tracer.detach();
    tracer.close();
    loop.stdin.end();
    loop.kill();
  }
}
