// SPDX-License-Identifier: Apache-2.0
import type { Command } from "commander";
import type { CheckStatus, DoctorReport } from "../host/checks.js";
import { runDoctor } from "../host/doctor.js";

const STATUS_MARK: Record<CheckStatus, string> = { ok: "✓", warn: "!", missing: "✗", unknown: "?" };

/** The human report: one aligned row per check, its notes and fix beneath, then a verdict. */
export function formatDoctorReport(report: DoctorReport): string {
  const nameWidth = Math.max(...report.checks.map((check) => check.name.length));
  const indent = " ".repeat(2 + 2 + nameWidth + 2);
  const lines: string[] = [];
  for (const check of report.checks) {
    lines.push(`  ${STATUS_MARK[check.status]} ${check.name.padEnd(nameWidth)}  ${check.found}`);
    for (const note of check.notes ?? []) lines.push(`${indent}${note}`);
    if (check.fix && check.status !== "ok") lines.push(`${indent}fix: ${check.fix}`);
  }
  lines.push("", summarizeDoctorReport(report));
  return lines.join("\n") + "\n";
}

/** One line: ready or not, and which checks need attention. */
export function summarizeDoctorReport(report: DoctorReport): string {
  const namesWith = (status: CheckStatus) =>
    report.checks.filter((check) => check.status === status).map((check) => check.name);
  const problems = namesWith("missing");
  const warnings = namesWith("warn");
  const unknowns = namesWith("unknown");
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;
  const asides = [
    warnings.length ? `${plural(warnings.length, "warning")}: ${warnings.join(", ")}` : null,
    unknowns.length ? `${plural(unknowns.length, "unknown")}: ${unknowns.join(", ")}` : null,
  ].filter((aside): aside is string => aside !== null);
  if (problems.length) {
    return [
      `${plural(problems.length, "problem")}: ${problems.join(", ")} — not ready to profile`,
      ...asides,
    ].join("; ");
  }
  return asides.length ? `ready to profile (${asides.join("; ")})` : "ready to profile";
}

export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description(
      "check that this machine can profile llama.cpp: kernel, BTF, uprobes, permissions, perf events, targets",
    )
    .option("--json", "print one JSON object {checks, ready} instead of the table")
    .option("--strict", "exit with status 1 when a required check is missing")
    .action((options: { json?: boolean; strict?: boolean }) => {
      const report = runDoctor();
      process.stdout.write(
        options.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report),
      );
      // A report, not a gate: only --strict turns a missing requirement into a failure.
      if (options.strict && !report.ready) process.exitCode = 1;
    });
}
