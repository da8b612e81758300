// SPDX-License-Identifier: Apache-2.0
// profinfer replay RUN_DIR: rebuild every output of a run folder from its recorded events (no
// root needed); with --otlp-endpoint, send its spans.
import type { Command } from "commander";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { reportOutputFiles } from "../session/runReport.js";
import { checkEndpoint, formatExportStats } from "../sinks/otel/exporter.js";
import { newSpanExport } from "../sinks/otel/liveOtlp.js";
import { writeRunOutputs } from "../sinks/runOutputs.js";
import {
  addOtlpOptions,
  log,
  otlpEndpoint,
  otlpExportConfig,
  requestIdleNs,
  requireRunDir,
  timelineOption,
  type OtlpOptions,
} from "./options.js";
import type { TimelineFormat } from "../sinks/runOutputs.js";

export function registerReplayCommand(program: Command): void {
  addOtlpOptions(
    program
      .command("replay")
      .description(
        "rebuild every output of a run folder from its recorded events (no root needed); with --otlp-endpoint, send its spans",
      )
      .argument("<run-dir>", "a folder written by record or attach")
      .option("--no-report", "do not write report.html")
      .addOption(timelineOption()),
  ).action(
    async (runDir: string, opts: OtlpOptions & { report: boolean; timeline: TimelineFormat }) => {
      const dir = requireRunDir(runDir);
      const endpoint = otlpEndpoint(opts);
      if (endpoint) {
        const problem = await checkEndpoint(endpoint);
        if (problem)
          throw new UserError(
            `the OTLP endpoint ${endpoint.url} does not answer: ${problem}. Is it the collector's gRPC port (4317)? Nothing was sent; run replay again when it is up.`,
          );
      }
      // a replay sends the whole run each time: what it could not send is not kept, unless asked
      const spoolDir = !endpoint
        ? null
        : opts.otlpSpool
          ? resolve(opts.otlpSpool)
          : mkdtempSync(join(tmpdir(), "profinfer-replay-spool-"));
      const exporter =
        endpoint && spoolDir ? newSpanExport(otlpExportConfig(opts, endpoint, spoolDir)) : null;
      const outputs = writeRunOutputs(dir, {
        report: opts.report,
        timeline: opts.timeline,
        opSampling: opts.otlpOpSample,
        requestIdleNs: requestIdleNs(opts),
        ...(opts.serviceName !== undefined ? { serviceName: opts.serviceName } : {}),
        // the spans go to the exporter chunk by chunk (its queue spools to disk when it falls behind)
        ...(exporter
          ? {
              spans: {
                resource: (attributes) => exporter.setResource(attributes),
                add: (records) => exporter.add(records),
              },
            }
          : {}),
      });
      process.stdout.write(outputs.summary);
      reportOutputFiles(outputs, log);
      if (!endpoint || !exporter || !spoolDir) return;
      const flushed = await exporter.flush(opts.otlpFlushTimeout * 1000);
      await exporter.close();
      if (!opts.otlpSpool) rmSync(spoolDir, { recursive: true, force: true });
      log(formatExportStats(exporter.stats, opts.otlpSpool ? spoolDir : null));
      if (!flushed || exporter.stats.dropped > 0) {
        throw new UserError(
          `not every span reached ${endpoint.url} (${exporter.stats.queued} queued, ${exporter.stats.dropped} dropped); run replay again when it takes them`,
          1,
        );
      }
    },
  );
}
