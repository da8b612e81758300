// SPDX-License-Identifier: Apache-2.0
// Requests from the batches of llama_decode calls (docs/trace-model.md "Requests"). A request is
// one sequence's work from its prompt to its last generated token. The batch of each call says,
// per sequence, how many tokens it held, their first and last position and how many outputs were
// wanted; from that, each call's part of a sequence is a prompt chunk, a decode step or a
// speculative verification, and a new request starts where a sequence's positions go back (the
// server trimmed its cache to a reused prefix) or jump ahead (it loaded a cached prompt), or a
// prompt follows a generation (a chat's next turn continues the positions). Each call's phase
// follows from its parts. The kernel applies the same rules for --level metrics
// (bpf/requests.bpf.h); the two must stay in step.
import { BatchFlag } from "../abi/constants.js";
import type { BatchSequence } from "../abi/events.js";
import type { Phase } from "@profinfer/contract";
import type { Request, RequestStep, StepKind, Token } from "./types.js";

/**
 * The default idle bound (--request-idle): a request whose sequence had no llama_decode call for
 * this long (recording time) has ended, for the live readers (the per-request metrics, the live
 * span export, traces.otlp.jsonl). profinfer sees calls, not responses: a request being served
 * takes part in every call of its context, a few ms apart, and a server's last request would
 * else wait for the next one on its slot. A call in flight of its process defers the decision.
 */
export const REQUEST_IDLE_NS = 2_000_000_000n;

/**
 * Whether a request whose last call ended at `endNs` was cut off by the end of tracing at
 * `stoppedNs`: it ended less than two of its step intervals (the longest time between the ends
 * of two of its calls, else its one call's duration) before.
 */
export function cutOffAtEnd(endNs: bigint, stoppedNs: bigint, intervalNs: bigint): boolean {
  return stoppedNs - endNs < 2n * intervalNs;
}

/**
 * What a request tracker keeps of a call: everything but its graphs and expert rows, so that a
 * long request held open across chunks does not hold its calls' operators, and the call's own
 * token keeps its phase and steps until they are copied back (the tracker sets both on the copy).
 */
export function callOf(token: Token): Token {
  const call: Token = { ...token, graphs: [] };
  delete call.experts;
  delete call.steps;
  return call;
}

/** A sequence's state between calls. */
interface SequenceState {
  request: Request;
  /** its highest position so far; -1 when the batches give none */
  posMax: number;
  /** its batches say which outputs are wanted (else llama outputs each call's last token) */
  outputsKnown: boolean;
  /**
   * a prompt chunk's output whose use is known only from the next call: outputs not known, or a
   * call beyond the per-call bound (its unread tokens may hold the prompt's last, with its output)
   */
  pendingOutputNs: bigint | null;
  /** the longest time between the ends of two of its calls (for the cut-off rule) */
  longestGapNs: bigint;
}

/** The sequences of a call: its batch summary, or (older recordings) one sequence 0. */
function sequencesOf(token: Token): readonly BatchSequence[] {
  if (token.batch) return token.batch.seqs;
  return [{ seqId: 0, nTokens: token.nTokens, posMin: -1, posMax: -1, nOutputs: 1 }];
}

function outputsKnown(token: Token): boolean {
  return token.batch !== undefined && (token.batch.flags & BatchFlag.OUTPUTS) !== 0;
}

/** Whether `s` (of a call whose batch says its outputs or not) starts a new request. */
function startsRequest(
  state: SequenceState | undefined,
  s: BatchSequence,
  known: boolean,
): boolean {
  if (!state) return true;
  // the caller changed how it fills batches (llama-server's warm-up call, then its requests)
  if (state.outputsKnown !== known) return true;
  const last = state.request.steps.at(-1)!;
  // positions went back: the cache was trimmed to a reused prefix (not a rejected draft)
  if (s.posMin >= 0 && state.posMax >= 0 && s.posMin <= state.posMax)
    return last.kind !== "speculative";
  // positions jumped ahead: the server loaded a cached prompt into the slot (llama-server's
  // prompt cache in memory) and evaluates what follows it, perhaps one token with its output,
  // which would otherwise read as a decode step (a request's calls move on by one position, or
  // less after a speculative verification); not after a call beyond the bound, whose unread
  // tokens took the positions in between
  const unread = known && state.pendingOutputNs !== null;
  if (s.posMin >= 0 && state.posMax >= 0 && s.posMin > state.posMax + 1 && !unread) return true;
  if (!known) return s.nTokens > 1 && last.kind === "decode";
  // a prompt after a generation: a chat's next turn, continuing the positions
  return state.request.firstOutputNs !== null && s.nTokens > 1 && s.nOutputs < s.nTokens;
}

/** What a sequence's tokens in a call are, for a request that already has its earlier steps. */
function kindOf(state: SequenceState, s: BatchSequence, known: boolean): StepKind {
  if (!known) return s.nTokens > 1 ? "prompt" : "decode";
  // after a call beyond the bound whose unread tokens held the prompt's end: one token is the
  // first generated one's decode step
  if (state.pendingOutputNs !== null && s.nTokens === 1) return "decode";
  if (state.request.firstOutputNs === null) return "prompt";
  return s.nTokens === 1 ? "decode" : "speculative";
}

/** A call's phase from its parts; a call without any (an empty batch) by its size. */
function phaseOf(steps: readonly RequestStep[], token: Token): Phase {
  const prompt = steps.some((s) => s.kind === "prompt");
  const generated = steps.some((s) => s.kind !== "prompt");
  if (prompt && generated) return "mixed";
  if (prompt) return "prefill";
  if (generated) return "decode";
  return token.nTokens > 1 ? "prefill" : "decode";
}

/**
 * Follows the requests of a run's calls, fed in start order (a whole run at once, or a live
 * export's chunks one after the other): sets each call's phase and steps, and says which
 * requests have ended.
 */
export class RequestTracker {
  private readonly sequences = new Map<string, SequenceState>();
  /** every sequence met so far */
  private readonly seen = new Set<string>();
  private nextId = 0;

  /**
   * Adds one llama_decode call: sets its `phase` and `steps`. Returns the requests it started
   * and those it ended (a new request on their sequence).
   */
  add(token: Token): { started: Request[]; ended: Request[] } {
    const started: Request[] = [];
    const ended: Request[] = [];
    const known = outputsKnown(token);
    const steps: RequestStep[] = [];
    const truncated =
      token.batch !== undefined &&
      (token.batch.tokensRead < token.nTokens || token.batch.tokensLost > 0);
    for (const s of sequencesOf(token)) {
      const key = `${token.tgid}:${token.ctx}:${s.seqId}`;
      let state = this.sequences.get(key);
      let joined = false;
      if (startsRequest(state, s, known)) {
        if (state) ended.push(state.request);
        // a sequence first met generating (one token, further on): the recording began during it
        joined = !this.seen.has(key) && known && s.nTokens === 1 && s.posMin > 0;
        this.seen.add(key);
        const request: Request = {
          id: this.nextId++,
          tgid: token.tgid,
          ctx: token.ctx,
          seqId: s.seqId,
          startNs: token.startNs,
          endNs: token.endNs,
          firstOutputNs: null,
          promptTokens: 0,
          cachedTokens: s.posMin >= 0 ? s.posMin : null,
          generatedTokens: 0,
          steps: [],
          incomplete: joined ? "the recording began during it" : null,
        };
        started.push(request);
        state = {
          request,
          posMax: -1,
          outputsKnown: known,
          pendingOutputNs: null,
          longestGapNs: 0n,
        };
        this.sequences.set(key, state);
      }
      const request = state!.request;
      const step: RequestStep = {
        request,
        token,
        kind: joined ? "decode" : kindOf(state!, s, known),
        nTokens: s.nTokens,
        nOutputs: s.nOutputs,
        posMin: s.posMin,
        posMax: s.posMax,
      };
      this.addStep(state!, step, known, truncated);
      if (joined) request.cachedTokens = null;
      steps.push(step);
      if (truncated && request.incomplete === null) {
        request.incomplete = `a llama_decode call's batch was beyond the per-call bound (${
          token.nTokens - token.batch!.tokensRead
        } tokens and ${token.batch!.tokensLost} token-sequence pairs not read)`;
      }
      if (token.ret === null && request.incomplete === null)
        request.incomplete = "a llama_decode call of it was not recorded to its end";
    }
    token.steps = steps;
    token.phase = phaseOf(steps, token);
    return { started, ended };
  }

  private addStep(
    state: SequenceState,
    step: RequestStep,
    known: boolean,
    truncated: boolean,
  ): void {
    const request = state.request;
    const previous = request.steps.at(-1);
    if (previous) {
      const gap = step.token.endNs - previous.token.endNs;
      if (gap > state.longestGapNs) state.longestGapNs = gap;
    }
    // a verification's accepted drafts show in how far the next call's positions moved on
    if (previous?.kind === "speculative" && previous.posMin >= 0 && step.posMin > previous.posMin)
      request.generatedTokens += step.posMin - previous.posMin - 1;
    request.steps.push(step);
    request.endNs = step.token.endNs;
    if (step.kind === "prompt") request.promptTokens += step.nTokens;
    state.posMax = Math.max(state.posMax, step.posMax);
    if (!known) {
      // llama outputs each call's last token: a prompt chunk's is the first token only when a
      // decode step follows it
      if (step.kind === "prompt") {
        state.pendingOutputNs = step.token.endNs;
        return;
      }
      if (state.pendingOutputNs !== null) {
        request.generatedTokens += 1;
        request.firstOutputNs ??= state.pendingOutputNs;
        state.pendingOutputNs = null;
      }
      request.generatedTokens += 1;
      request.firstOutputNs ??= step.token.endNs;
      return;
    }
    // a prompt chunk beyond the bound without an output read: its unread tokens may hold it
    const pending = state.pendingOutputNs;
    state.pendingOutputNs =
      truncated && step.kind === "prompt" && step.nOutputs === 0 ? step.token.endNs : null;
    if (pending !== null && step.kind === "decode") {
      request.generatedTokens += 1;
      request.firstOutputNs ??= pending;
    }
    // each output wanted is a token sampled; a verification samples at least its first
    request.generatedTokens += step.kind === "speculative" ? 1 : step.nOutputs;
    if (step.nOutputs > 0) request.firstOutputNs ??= step.token.endNs;
  }

  /** Ends the requests whose last call ended before `ns` (a live export's idle bound). */
  endIdle(ns: bigint): Request[] {
    const ended: Request[] = [];
    for (const [key, state] of this.sequences) {
      if (state.request.endNs < ns) {
        ended.push(state.request);
        this.sequences.delete(key);
      }
    }
    return ended;
  }

  /**
   * Ends every open request. `cutOff`: when and why the recording may have cut requests off
   * (null: it cannot have). A request whose last call ended less than two of its step intervals
   * before `cutOff.ns` was cut off by it (profinfer sees no request's end, only its calls).
   */
  endAll(cutOff: RecordingCutOff | null): Request[] {
    const ended: Request[] = [];
    for (const state of this.sequences.values()) {
      const request = state.request;
      const lastCall = request.steps.at(-1)!.token;
      const interval =
        state.longestGapNs > 0n ? state.longestGapNs : lastCall.endNs - lastCall.startNs;
      if (cutOff && request.incomplete === null && cutOffAtEnd(request.endNs, cutOff.ns, interval))
        request.incomplete = cutOff.reason;
      ended.push(state.request);
    }
    this.sequences.clear();
    return ended;
  }
}

/** When a recording stopped in a way that may have cut a request off, and what to say then. */
export interface RecordingCutOff {
  ns: bigint;
  reason: string;
}

/**
 * Time to first token: from the start of its first call to the end of the call that produced its
 * first output; null before it had one.
 */
export function requestTtftNs(request: Request): number | null {
  return request.firstOutputNs === null ? null : Number(request.firstOutputNs - request.startNs);
}

/**
 * Time per output token: from the end of the call that produced its first output to the end of
 * its last call, over the tokens generated after the first; null with fewer than two.
 */
export function requestTpotNs(request: Request): number | null {
  if (request.firstOutputNs === null || request.generatedTokens < 2) return null;
  return Number(request.endNs - request.firstOutputNs) / (request.generatedTokens - 1);
}

/**
 * Whether the end of a recording may have cut requests off: when tracing stopped (`stoppedNs`)
 * with the target still running (a detach: no exit seen), or because a signal killed it. A target
 * that exited by itself was traced to its end: every call it made is in the recording, and a
 * request that ended just before the exit is its last, not a cut-off one.
 */
export function recordingCutOff(
  stoppedNs: bigint | null,
  exit: { signal: string | null } | null,
): RecordingCutOff | null {
  if (stoppedNs === null) return null;
  if (exit === null) return { ns: stoppedNs, reason: "the recording ended during it" };
  if (exit.signal !== null)
    return { ns: stoppedNs, reason: `the process was killed (${exit.signal}) during it` };
  return null;
}

/**
 * The requests of `tokens` (calls in start order) of a recording that may have cut some off
 * (`cutOff`, recordingCutOff), each call's phase and steps set on the way. Returns the requests in
 * start order.
 */
export function buildRequests(tokens: readonly Token[], cutOff: RecordingCutOff | null): Request[] {
  const tracker = new RequestTracker();
  const requests: Request[] = [];
  for (const token of tokens) requests.push(...tracker.add(token).started);
  tracker.endAll(cutOff);
  return requests;
}
