// SPDX-License-Identifier: Apache-2.0
// From the frames of a panel's query to the model of the chosen view: which frames are a trace,
// a node graph pair or Prometheus series, and what each view makes of them. Throws the typed
// errors of errors.ts; the panel shows their message.
import { dagFromNodeGraph, findNodeGraphFrames } from "./dagFromNodeGraph.js";
import { dagFromTrace } from "./dagFromTrace.js";
import type { DagModel } from "./dagModel.js";
import { MissingFieldError, NoUsableFrameError } from "./errors.js";
import type { FrameLike } from "./frames.js";
import { heatmapFromPrometheus, heatmapFromTrace, type HeatmapModel } from "./heatmap.js";
import { isTraceFrame, traceFromFrame } from "./trace.js";
import type { HeatmapOptions } from "../types.js";

export function dagModelFromFrames(
  frames: readonly FrameLike[],
  graphId: string | null = null,
): DagModel {
  if (frames.length === 0)
    throw new NoUsableFrameError(
      "The query returned no data. Query a trace with the Tempo data source, or a nodes/edges frame pair.",
    );
  const trace = frames.find(isTraceFrame);
  if (trace) return dagFromTrace(traceFromFrame(trace), { graphId });
  const { nodes, edges } = findNodeGraphFrames(frames);
  if (nodes && edges) return dagFromNodeGraph(nodes, edges);
  if (nodes && !edges)
    throw new MissingFieldError(
      "source",
      "node graph edges",
      "Add an edges frame (fields id, source, target) beside the nodes frame.",
    );
  throw new NoUsableFrameError(
    "ProfDAG reads a trace (the Tempo data source, query type TraceQL with a trace ID) or a nodes/edges frame pair; the query returned neither.",
  );
}

export function heatmapModelFromFrames(
  frames: readonly FrameLike[],
  options: HeatmapOptions,
): HeatmapModel {
  if (frames.length === 0)
    throw new NoUsableFrameError(
      "The query returned no data. Query profinfer_moe_expert_selections_total with Prometheus, or a trace with Tempo.",
    );
  const trace = frames.find(isTraceFrame);
  const useTrace =
    options.heatmapSource === "trace" || (options.heatmapSource === "auto" && trace !== undefined);
  if (useTrace) {
    if (!trace)
      throw new NoUsableFrameError(
        "The heatmap is set to read a trace, but the query returned no trace frame: query a trace ID with the Tempo data source.",
      );
    return heatmapFromTrace(traceFromFrame(trace, true), {
      mode: options.heatmapMode,
      layer: options.heatmapLayer < 0 ? null : options.heatmapLayer,
    });
  }
  return heatmapFromPrometheus(frames.filter((f) => !isTraceFrame(f)));
}
