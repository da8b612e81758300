// SPDX-License-Identifier: Apache-2.0
// What a finished recording tells the user on the terminal: what could not be traced, the
// summary, profinfer's own CPU, and where the outputs are.
import type { Recorder } from "../record/recorder.js";
import { writeRunOutputs, type RunOutputOptions, type RunOutputs } from "../sinks/runOutputs.js";

/** Writes the run's outputs from events.pinf and tells what they hold. */
export function reportRun(
  outDir: string,
  recorder: Recorder,
  options: RunOutputOptions,
  log: (message: string) => void,
  printSummary = true,
): void {
  const stripped = recorder.strippedExecutable;
  if (recorder.libraries.length === 0 && stripped) {
    log(
      `${stripped} is stripped (it has no symbol table), and it maps no llama.cpp library: profinfer finds ` +
        `llama_decode and ggml's functions by their symbols, which a llama.cpp linked into one executable ` +
        `does not export. Nothing was traced. Trace a build that is not stripped, or strip it with ` +
        `--strip-debug, which keeps the symbol table.`,
    );
  } else if (recorder.libraries.length === 0) {
    log(
      `no llama.cpp library was found in the target: none of the files it mapped defines llama_decode, ` +
        `ggml_backend_sched_graph_compute_async, or ggml_graph_compute. Is it a llama.cpp program ` +
        `(llama-cli, llama-server, a node-llama-cpp app)? Nothing was traced.`,
    );
  } else {
    for (const line of recorder.levelReport()) log(`not traced: ${line}`);
  }
  const outputs = writeRunOutputs(outDir, options);
  if (printSummary) process.stdout.write(outputs.summary);
  const self = recorder.profilerCpu;
  if (self && self.wallMs >= 1000) {
    log(
      `used ${self.cpuMs.toFixed(0)} ms of CPU while tracing (${((100 * self.cpuMs) / self.wallMs).toFixed(2)}% of one core over ${(self.wallMs / 1000).toFixed(1)} s from the first llama_decode)`,
    );
  } else if (self) {
    // its first calls were read at the end (a short run): a share of so short a time says nothing
    log(`used ${self.cpuMs.toFixed(0)} ms of CPU while tracing`);
  }
  reportOutputFiles(outputs, log);
  const segments = recorder.segments;
  if (segments.segments > 1) {
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    log(
      `events: ${segments.segments - segments.removed} files kept (${mib(segments.keptBytes)})` +
        (segments.removed > 0
          ? `, the oldest ${segments.removed} removed (${mib(segments.removedBytes)}) to stay within --max-disk`
          : ""),
    );
  }
  log(`run folder ${outDir}`);
}

/** Where report.html went, or why it could not be written. */
export function reportOutputFiles(outputs: RunOutputs, log: (message: string) => void): void {
  if (outputs.report) log(`report ${outputs.report}`);
  if (outputs.reportError) log(outputs.reportError);
  if (outputs.notWritten) log(outputs.notWritten);
}
