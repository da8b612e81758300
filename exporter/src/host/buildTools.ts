// SPDX-License-Identifier: Apache-2.0
// The tools that build the BPF object and the addon (clang, bpftool, ...).
import { basename, join } from "node:path";
import type { DoctorCheck, DoctorHost } from "./checks.js";

/** Tools needed to build bpf/, with the Debian package providing each. */
export const BPF_BUILD_TOOLS = [
  { command: "clang", debianPackage: "clang" },
  { command: "bpftool", debianPackage: "bpftool" },
] as const;

/** Debian keeps bpftool in /usr/sbin, which a non-root PATH often lacks. */
const SBIN_DIRS = ["/usr/sbin", "/sbin"];

export function checkBuildTools(host: DoctorHost): DoctorCheck {
  const found: string[] = [];
  const offPath: string[] = [];
  const absent: (typeof BPF_BUILD_TOOLS)[number][] = [];
  for (const tool of BPF_BUILD_TOOLS) {
    const onPath = host.findOnPath(tool.command);
    if (onPath) {
      found.push(`${tool.command} ${onPath}`);
      continue;
    }
    const elsewhere = SBIN_DIRS.map((dir) => join(dir, tool.command)).find((path) =>
      host.exists(path),
    );
    if (elsewhere) offPath.push(elsewhere);
    else absent.push(tool);
  }
  const base = { id: "bpf-toolchain", name: "BPF build tools" };
  const parts = [
    ...found,
    ...offPath.map((path) => `${basename(path)} at ${path} (not on PATH)`),
    ...absent.map((tool) => `${tool.command} absent`),
  ];
  if (absent.length) {
    return {
      ...base,
      status: "missing",
      found: parts.join(", "),
      fix: `apt-get install ${absent.map((tool) => tool.debianPackage).join(" ")}`,
    };
  }
  if (offPath.length) {
    return {
      ...base,
      status: "warn",
      found: parts.join(", "),
      fix: `add ${[...new Set(offPath.map((path) => path.slice(0, -basename(path).length - 1)))].join(":")} to PATH`,
    };
  }
  return { ...base, status: "ok", found: parts.join(", ") };
}
