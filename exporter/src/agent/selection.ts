// SPDX-License-Identifier: Apache-2.0
// Which processes the host agent follows: include and exclude rules over what /proc says of a
// process (processInfo.ts). A rule's fields are globs (picomatch, `*` crossing `/`); a rule
// matches when every field it has matches; a process is followed when no include rule is given or
// one matches, and no exclude rule matches.
import picomatch from "picomatch";
import { basename } from "node:path";
import type { ProcessInfo } from "./processInfo.js";

/** The fields a rule may have, each a glob (docs/agent.md "Selection"). */
export const RULE_FIELDS = [
  "executable",
  "command",
  "cgroup",
  "container",
  "pod",
  "namespace",
] as const;
export type RuleField = (typeof RULE_FIELDS)[number];
export type SelectionRule = Partial<Record<RuleField, string>>;

export interface Selection {
  include: readonly SelectionRule[];
  exclude: readonly SelectionRule[];
}

/** The values a field's glob is matched against (any one matching is a match). */
function valuesOf(field: RuleField, info: ProcessInfo): string[] {
  switch (field) {
    case "executable":
      return info.executable ? [info.executable, basename(info.executable)] : [];
    case "command":
      return [info.command.join(" ")];
    case "cgroup":
      return [info.cgroup];
    case "container":
      return info.container ? [info.container.id] : [];
    case "pod":
      return info.pod?.name ? [info.pod.name] : [];
    case "namespace":
      return info.pod?.namespace ? [info.pod.namespace] : [];
  }
}

type Matcher = (info: ProcessInfo) => boolean;

function ruleMatcher(rule: SelectionRule): Matcher {
  const tests = RULE_FIELDS.flatMap((field) => {
    const glob = rule[field];
    if (glob === undefined) return [];
    const match = picomatch(glob, { bash: true, dot: true });
    return [(info: ProcessInfo) => valuesOf(field, info).some((v) => match(v))];
  });
  return (info) => tests.every((t) => t(info));
}

/** Whether a process is to be followed, by `selection`. */
export function selector(selection: Selection): Matcher {
  const include = selection.include.map(ruleMatcher);
  const exclude = selection.exclude.map(ruleMatcher);
  return (info) =>
    (include.length === 0 || include.some((m) => m(info))) && !exclude.some((m) => m(info));
}

/** A rule as a flag gives it: FIELD=GLOB. */
export function parseRuleFlag(value: string): SelectionRule {
  const at = value.indexOf("=");
  const field = value.slice(0, at) as RuleField;
  if (at <= 0 || !RULE_FIELDS.includes(field)) {
    throw new Error(`'${value}' is not FIELD=GLOB with FIELD one of ${RULE_FIELDS.join(", ")}`);
  }
  return { [field]: value.slice(at + 1) };
}
