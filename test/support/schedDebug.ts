// SPDX-License-Identifier: Apache-2.0
// GGML_SCHED_DEBUG, llama.cpp's own view of how its scheduler splits a graph: each time it splits
// one, it prints every split with its backend and inputs, `## SPLIT #0: CPU # 0 inputs`, then
// `## SPLIT #1: Vulkan0 # 2 inputs: [inp_embd (   4K)] [inp_pos (   0K)] `, and with level 2
// every node that is not a view, `node #  12 (  MUL_MAT): ...`, under its split.

export interface SchedSplit {
  index: number;
  backend: string;
  /** the names of the tensors copied to its backend before it */
  inputs: string[];
  /** the indices of the nodes printed under it (level 2; views are not printed) */
  nodes: number[];
}

/** One split of a graph: the splits in order. */
export type SchedAssignment = SchedSplit[];

/**
 * The prefix llama.cpp's common log puts before each message (`0.00.760.223 D `): the scheduler
 * prints a split's line in several messages, so the prefixes land inside it.
 */
const LOG_PREFIX = /\d+\.\d+\.\d+\.\d+ [A-Z] /g;

/** The assignments printed (stdout and stderr together), in order. */
export function schedAssignments(text: string): SchedAssignment[] {
  const out: SchedAssignment[] = [];
  let current: SchedAssignment | null = null;
  for (const line of text.replace(LOG_PREFIX, "").split("\n")) {
    const split = /^## SPLIT #(\d+): (.+?) # (\d+) inputs(?::(.*))?$/.exec(line.trimEnd());
    if (split) {
      const index = Number(split[1]);
      if (index === 0 || !current) out.push((current = []));
      const inputs = [...(split[4] ?? "").matchAll(/\[(.+?) \(\s*\d+[KM]\)\]/g)].map((m) => m[1]!);
      if (inputs.length !== Number(split[3])) {
        throw new Error(
          `GGML_SCHED_DEBUG line lists ${inputs.length} of ${split[3]} inputs: ${line}`,
        );
      }
      current.push({ index, backend: split[2]!, inputs, nodes: [] });
      continue;
    }
    const node = /^node #\s*(\d+) \(/.exec(line);
    if (node && current && current.length > 0) current.at(-1)!.nodes.push(Number(node[1]));
  }
  return out;
}

/** An assignment as one comparable text: each split's backend and inputs. */
export function assignmentKey(
  splits: readonly { backend: string; inputs: readonly string[] }[],
): string {
  return splits.map((s) => `${s.backend}[${[...s.inputs].sort().join(",")}]`).join(" | ");
}
