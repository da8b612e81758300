// SPDX-License-Identifier: Apache-2.0
// The per-backend metrics, read at scrape time from the kernel's backend aggregates (one entry per
// device, bpf/backends.bpf.h): the `backend` label is the device's name as llama.cpp gives it,
// from the build's registry, so its values are bounded by the devices the build has.
import { Counter, type Registry } from "prom-client";
import * as N from "@profinfer/contract";
import type { BackendAggregate } from "../../trace/notes.js";
import type { LiveRecording } from "../liveSink.js";

type Field = "splits" | "submitNs" | "syncNs" | "copies" | "copyBytes" | "copyNs";

const FAMILIES: { name: string; help: string; field: Field; scale: number }[] = [
  {
    name: N.BACKEND_SPLITS,
    help: "Splits of the scheduler's graphs handed to each backend",
    field: "splits",
    scale: 1,
  },
  {
    name: N.BACKEND_SUBMIT_SECONDS,
    help: "Time in handing splits to each backend (ggml_backend_graph_compute_async): all of their compute for a backend that computes before it returns (CPU, BLAS)",
    field: "submitNs",
    scale: 1e-9,
  },
  {
    name: N.BACKEND_WAIT_SECONDS,
    help: "Time the host waited for each backend (ggml_backend_synchronize)",
    field: "syncNs",
    scale: 1e-9,
  },
  {
    name: N.BACKEND_COPIES,
    help: "Inputs copied to each backend before its splits",
    field: "copies",
    scale: 1,
  },
  {
    name: N.BACKEND_COPY_BYTES,
    help: "Bytes of the inputs copied to each backend before its splits",
    field: "copyBytes",
    scale: 1,
  },
  {
    name: N.BACKEND_COPY_SECONDS,
    help: "Time in copying inputs to each backend before its splits",
    field: "copyNs",
    scale: 1e-9,
  },
];

/** Registers the backend families on `registry`; `nameOf` names an aggregate's device. */
export function registerBackendMetrics(
  registry: Registry,
  source: Pick<LiveRecording, "aggregates">,
  model: string,
  nameOf: (aggregate: BackendAggregate) => string,
): void {
  for (const family of FAMILIES) {
    new Counter({
      name: family.name,
      help: family.help,
      labelNames: [N.LABEL_MODEL, N.LABEL_BACKEND] as const,
      registers: [registry],
      collect() {
        this.reset();
        // two devices the registry could not tell apart sum under one name
        for (const a of source.aggregates().backends ?? []) {
          this.inc(
            { [N.LABEL_MODEL]: model, [N.LABEL_BACKEND]: nameOf(a) },
            a[family.field] * family.scale,
          );
        }
      },
    });
  }
}
