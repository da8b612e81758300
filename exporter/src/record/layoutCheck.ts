// SPDX-License-Identifier: Apache-2.0
// The resolved ggml layout, checked against what the tracer reads in the running process: the
// first tensor descriptions must read back as tensors (names, ops, shapes), else the layout is
// not this build's and operator tracing is refused rather than turned into garbage.
import { EventType, decodeEvent, type TensorEvent } from "../abi/events.js";
import { validateTensorReadings, type ProbedLayout } from "../discovery/layout.js";

/** Tensor descriptions read before the verdict. */
const SAMPLE = 24;

export class LayoutCheck {
  private sample: TensorEvent[] = [];
  /** the verdict: null while sampling, then "ok" or why the layout was refused */
  private verdict: "ok" | string | null = null;

  get sampling(): boolean {
    return this.verdict === null;
  }

  /** Why operator tracing was refused, once it was. */
  get refusal(): string | null {
    return this.verdict === null || this.verdict === "ok" ? null : this.verdict;
  }

  /**
   * Takes the tensor descriptions of a batch while sampling (only the first batches with any are
   * walked: tens of thousands of records a second otherwise cost the target CPU).
   */
  take(batch: Buffer, tensorRecords: number): void {
    if (!this.sampling || tensorRecords === 0) return;
    for (let at = 0; at + 8 <= batch.length;) {
      const length = batch.readUInt32LE(at);
      if (batch.readUInt32LE(at + 4) === EventType.TENSOR)
        this.sample.push(decodeEvent(batch, at + 4, length) as TensorEvent);
      at += 4 + length;
    }
  }

  /** Enough has been read to judge (or `final`: judge on what there is). */
  due(final: boolean): boolean {
    return this.sampling && (this.sample.length >= SAMPLE || (final && this.sample.length > 0));
  }

  /** The verdict on the sample; the refusal message when the layout does not read back. */
  judge(layout: ProbedLayout | null): string | null {
    const problem = validateTensorReadings(this.sample, layout?.opNames.length ?? 0);
    this.sample = [];
    this.verdict = problem
      ? `the ggml layout resolved for ${layout?.library ?? "this build"} (ggml ${layout?.ggmlVersion ?? "?"}, commit ${layout?.commit ?? "?"}) ` +
        `does not read back in the running process: ${problem}. Tracing stopped: the calls, graphs and scheduling recorded until then are kept, without what was read through this layout. ` +
        `Report this build, and use --level graph meanwhile.`
      : "ok";
    return this.refusal;
  }
}
