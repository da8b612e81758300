// SPDX-License-Identifier: Apache-2.0
// llama-eval-callback, llama.cpp's own view of its graph: it prints every node it computes for
// the prompt, `name = (type) OP(src0{..}, src1{..}) = {shape}`, UNARY and GLU nodes by their sub-op
// (from its function common_debug_cb_eval; releases before 2026 print from ggml_debug).
import { llama, prompt } from "./targets.js";

export interface EvalCallbackNode {
  name: string;
  op: string;
  sources: string[];
}

/** llama-eval-callback (the set-up's, or `binary`) on the test prompt, 2 threads: its command line. */
export function evalCallbackCommand(
  modelPath: string,
  binary = llama("llama-eval-callback"),
): string[] {
  return [binary, "-m", modelPath, "-p", prompt, "-t", "2", "-c", "256"];
}

/** The nodes llama-eval-callback printed (stdout and stderr together), in order. */
export function evalCallbackNodes(text: string): EvalCallbackNode[] {
  const nodes: EvalCallbackNode[] = [];
  for (const m of text.matchAll(
    /(?:common_debug_cb_eval|ggml_debug):\s+(.+?) = \((\w+)\)\s+(\w+)\((.*)\) = \{/g,
  )) {
    const sources = [...m[4]!.matchAll(/([^,{}]+?)\{[\d, ]+\}/g)].map((s) => s[1]!.trim());
    nodes.push({ name: m[1]!.trim(), op: m[3]!, sources });
  }
  return nodes;
}

/** The ops it prints that the CPU does not compute (views and no-ops). */
export const NOT_COMPUTED = ["VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE", "NONE"];
