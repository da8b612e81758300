// SPDX-License-Identifier: Apache-2.0
// The dashboard "llama.cpp inference profile", built with Grafana's foundation SDK (typed
// against Grafana's dashboard schema): throughput and latency, time by operator, stall ratio,
// barrier wait, drops and profinfer's alerts from Prometheus; the expert heatmap; ProfDAG and the
// expert routing of a chosen call's trace, and Tempo search tables of requests and of calls (whose
// trace IDs choose it).
import * as bargauge from "@grafana/grafana-foundation-sdk/bargauge";
import * as common from "@grafana/grafana-foundation-sdk/common";
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import * as prometheus from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as table from "@grafana/grafana-foundation-sdk/table";
import * as tempo from "@grafana/grafana-foundation-sdk/tempo";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";
import { defaultOptions, type Options } from "../src/types.js";
import {
  ACTIVE_REQUESTS,
  ALERTS,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_TOKEN_OPS_EXPORTED,
  GEN_AI_OPERATION_TEXT_COMPLETION,
  SPAN_TOKEN,
  BARRIER_WAIT,
  BATCH_SEQUENCES,
  BATCH_TOKENS,
  EVENTS_DROPPED,
  MOE_EXPERT_SELECTIONS,
  OP_SECONDS,
  REQUEST_DURATION,
  REQUESTS,
  RULE_BACKEND_STALL_RATIO,
  RULE_GENERATED_TOKENS_PER_SECOND,
  RULE_IPC,
  RULE_TIME_SHARE,
  RULE_OP_BANDWIDTH_SHARE,
  RULE_TOKENS_PER_SECOND,
  SPANS_DROPPED,
  TIME_PER_OUTPUT_TOKEN,
  TIME_TO_FIRST_TOKEN,
  TOKENS,
} from "@profinfer/contract";
import {
  DASHBOARD_TITLE,
  DASHBOARD_UID,
  PANEL_PLUGIN_ID,
  PROMETHEUS_UID,
  TEMPO_UID,
} from "./names.js";

const PROM: common.DataSourceRef = { type: "prometheus", uid: PROMETHEUS_UID };
const TEMPO: common.DataSourceRef = { type: "tempo", uid: TEMPO_UID };
// the models and hosts chosen at the top: each host is its own Prometheus target (`instance`)
const MODEL = 'model=~"$model", instance=~"$instance"';

const promQuery = (expr: string, legend: string, refId = "A") =>
  new prometheus.DataqueryBuilder().datasource(PROM).expr(expr).legendFormat(legend).refId(refId);

function series(
  title: string,
  unit: string,
  queries: prometheus.DataqueryBuilder[],
  description: string,
) {
  const panel = new timeseries.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(PROM)
    .unit(unit)
    .height(8)
    .span(8);
  for (const q of queries) panel.withTarget(q);
  return panel;
}

/** The plugin's panel: options as the plugin declares them (src/types.ts). */
function profinferPanel(
  title: string,
  options: Partial<Options>,
  target: prometheus.DataqueryBuilder | tempo.DataqueryBuilder,
  ds: common.DataSourceRef,
) {
  return new dashboard.PanelBuilder()
    .type(PANEL_PLUGIN_ID)
    .title(title)
    .datasource(ds)
    .withTarget(target)
    .options({ ...defaultOptions, ...options })
    .height(14)
    .span(12);
}

/** A Tempo search table of traces, 12 columns wide. */
function searchTable(title: string, description: string, query: string) {
  return new table.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(TEMPO)
    .withTarget(
      new tempo.DataqueryBuilder()
        .datasource(TEMPO)
        .queryType("traceql")
        .query(query)
        .tableType(tempo.SearchTableType.Traces)
        .limit(50)
        .refId("A"),
    )
    .height(8)
    .span(12);
}

export function inferenceProfileDashboard(): dashboard.Dashboard {
  const traceQuery = () =>
    new tempo.DataqueryBuilder()
      .datasource(TEMPO)
      .queryType("traceql")
      .query("$trace_id")
      .refId("A");
  return new dashboard.DashboardBuilder(DASHBOARD_TITLE)
    .uid(DASHBOARD_UID)
    .tags(["profinfer", "llama.cpp", "ggml"])
    .description(
      "Tokens, latency, operators, experts and the operator DAG of llama.cpp inference, from profinfer's metrics (Prometheus) and traces (Tempo)",
    )
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: "now-1h", to: "now" })
    .refresh("30s")
    .withVariable(
      new dashboard.QueryVariableBuilder("model")
        .label("model")
        .datasource(PROM)
        .query(`label_values(${TOKENS}, model)`)
        .definition(`label_values(${TOKENS}, model)`)
        .multi(true)
        .includeAll(true)
        .allValue(".*")
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged),
    )
    .withVariable(
      new dashboard.QueryVariableBuilder("instance")
        .label("instance")
        .description("The hosts profinfer serves /metrics on (Prometheus' instance label)")
        .datasource(PROM)
        .query(`label_values(${TOKENS}{model=~"$model"}, instance)`)
        .definition(`label_values(${TOKENS}{model=~"$model"}, instance)`)
        .multi(true)
        .includeAll(true)
        .allValue(".*")
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged),
    )
    .withVariable(
      new dashboard.TextBoxVariableBuilder("trace_id")
        .label("trace ID")
        .description(
          "A profinfer trace of one llama_decode call: pick one in the Tempo search table of calls below",
        ),
    )
    .withRow(new dashboard.RowBuilder("Throughput and latency"))
    .withPanel(
      series(
        "Tokens per second",
        "suffix: tok/s",
        [
          promQuery(
            `sum by (model) (${RULE_GENERATED_TOKENS_PER_SECOND}{${MODEL}})`,
            "{{model}} generated",
          ),
          promQuery(
            `sum by (model, phase) (${RULE_TOKENS_PER_SECOND}{${MODEL}})`,
            "{{model}} in {{phase}} calls",
            "B",
          ),
        ],
        "Tokens generated for the requests per second, and tokens processed per second by the phase of their llama_decode call (prefill, decode, mixed)",
      ),
    )
    .withPanel(
      series(
        "Time to first token",
        "s",
        [
          promQuery(
            `histogram_quantile(0.5, sum by (le, model) (rate(${TIME_TO_FIRST_TOKEN}_bucket{${MODEL}}[$__rate_interval])))`,
            "p50 {{model}}",
          ),
          promQuery(
            `histogram_quantile(0.99, sum by (le, model) (rate(${TIME_TO_FIRST_TOKEN}_bucket{${MODEL}}[$__rate_interval])))`,
            "p99 {{model}}",
            "B",
          ),
        ],
        "Per request: from the start of the llama_decode call that began its prompt to the end of the call that produced its first token (no queueing before its first call)",
      ),
    )
    .withPanel(
      series(
        "Time per output token",
        "s",
        [
          promQuery(
            `histogram_quantile(0.5, sum by (le, model) (rate(${TIME_PER_OUTPUT_TOKEN}_bucket{${MODEL}}[$__rate_interval])))`,
            "p50 {{model}}",
          ),
          promQuery(
            `histogram_quantile(0.99, sum by (le, model) (rate(${TIME_PER_OUTPUT_TOKEN}_bucket{${MODEL}}[$__rate_interval])))`,
            "p99 {{model}}",
            "B",
          ),
        ],
        "Per request: from its first token to its last, per token after the first",
      ),
    )
    .withPanel(
      series(
        "Request duration",
        "s",
        [
          promQuery(
            `histogram_quantile(0.5, sum by (le, model) (rate(${REQUEST_DURATION}_bucket{${MODEL}}[$__rate_interval])))`,
            "p50 {{model}}",
          ),
          promQuery(
            `histogram_quantile(0.99, sum by (le, model) (rate(${REQUEST_DURATION}_bucket{${MODEL}}[$__rate_interval])))`,
            "p99 {{model}}",
            "B",
          ),
        ],
        "Per request: from the start of its first llama_decode call to the end of its last",
      ),
    )
    .withPanel(
      series(
        "Requests",
        "short",
        [
          promQuery(`sum by (model) (${ACTIVE_REQUESTS}{${MODEL}})`, "{{model}} in progress"),
          promQuery(
            `sum by (model, outcome) (rate(${REQUESTS}{${MODEL}}[$__rate_interval]))`,
            "{{model}} {{outcome}} /s",
            "B",
          ),
        ],
        "Requests in progress, and requests ended per second by outcome (complete, no_output, incomplete)",
      ),
    )
    .withPanel(
      series(
        "Batches",
        "short",
        [
          promQuery(
            `sum by (model) (rate(${BATCH_SEQUENCES}_sum{${MODEL}}[$__rate_interval])) / sum by (model) (rate(${BATCH_SEQUENCES}_count{${MODEL}}[$__rate_interval]))`,
            "{{model}} sequences per call",
          ),
          promQuery(
            `sum by (model) (rate(${BATCH_TOKENS}_sum{${MODEL}}[$__rate_interval])) / sum by (model) (rate(${BATCH_TOKENS}_count{${MODEL}}[$__rate_interval]))`,
            "{{model}} tokens per call",
            "B",
          ),
        ],
        "Mean requests and tokens in each llama_decode call's batch: how much work the calls share",
      ),
    )
    .withRow(new dashboard.RowBuilder("Operators"))
    .withPanel(
      series(
        "Time by operator type",
        "s",
        [promQuery(`sum by (op) (rate(${OP_SECONDS}{${MODEL}}[$__rate_interval]))`, "{{op}}")],
        "Seconds of operator time per second, by ggml op (first thread start to last thread end)",
      ),
    )
    .withPanel(
      new bargauge.PanelBuilder()
        .title("Share of graph time by operator")
        .datasource(PROM)
        .withTarget(
          promQuery(`sort_desc(avg by (op) (${RULE_TIME_SHARE}{${MODEL}}))`, "{{op}}").instant(),
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(8)
        .span(8),
    )
    .withPanel(
      series(
        "Backend stall ratio by operator",
        "percentunit",
        [promQuery(`avg by (op) (${RULE_BACKEND_STALL_RATIO}{${MODEL}})`, "{{op}}")],
        'Share of issue slots (cycles) stalled on the back end per operator, from the events each CPU has (profinfer_counter_info{feeds="backend_stall"} names its formula; empty without hardware counters). Over 0.8: memory-bound',
      ),
    )
    .withPanel(
      series(
        "Memory bandwidth share by operator",
        "percentunit",
        [promQuery(`avg by (op) (${RULE_OP_BANDWIDTH_SHARE}{${MODEL}})`, "{{op}}")],
        "Bytes each operator type moves per second of its own time (from its tensors' shapes), as a share of the most this host's memory reached in its machine profile: near 1, memory-bound, on any CPU (no PMU counter needed). The decode.memory-bound finding of a run says the same per run",
      ),
    )
    .withPanel(
      series(
        "Barrier wait by operator",
        "s",
        [promQuery(`sum by (op) (rate(${BARRIER_WAIT}{${MODEL}}[$__rate_interval]))`, "{{op}}")],
        "Time worker threads waited for the slowest thread after each operator: load imbalance",
      ),
    )
    .withPanel(
      series(
        "Instructions per cycle by operator",
        "short",
        [promQuery(`avg by (op) (${RULE_IPC}{${MODEL}})`, "{{op}}")],
        "Where hardware counters are recorded",
      ),
    )
    .withPanel(
      new stat.PanelBuilder()
        .title("Dropped events and spans")
        .datasource(PROM)
        .withTarget(
          promQuery(
            `sum by (reason) (increase(${EVENTS_DROPPED}{instance=~"$instance"}[$__range]))`,
            "events: {{reason}}",
          ),
        )
        .withTarget(
          promQuery(
            `sum(increase(${SPANS_DROPPED}{instance=~"$instance"}[$__range]))`,
            "spans",
            "B",
          ),
        )
        .unit("short")
        .height(8)
        .span(8),
    )
    .withPanel(
      new dashboard.PanelBuilder()
        .type("alertlist")
        .title("profinfer alerts")
        .description(`Prometheus rules of provisioning/prometheus/rules: ${ALERTS.join(", ")}`)
        .options({
          viewMode: "list",
          groupMode: "default",
          maxItems: 20,
          sortOrder: 1,
          dashboardAlerts: false,
          alertName: "Profinfer",
          alertInstanceLabelFilter: "",
          datasource: PROMETHEUS_UID,
          stateFilter: { firing: true, pending: true, noData: false, normal: true, error: true },
        })
        .height(8)
        .span(16),
    )
    .withRow(new dashboard.RowBuilder("Mixture of experts"))
    .withPanel(
      profinferPanel(
        "Expert selections (layer x expert)",
        { view: "heatmap", heatmapSource: "prometheus", heatmapMode: "layers" },
        promQuery(
          `sum by (layer, expert) (increase(${MOE_EXPERT_SELECTIONS}{${MODEL}}[$__range]))`,
          "{{layer}}/{{expert}}",
        ).instant(),
        PROM,
      ).span(24),
    )
    .withRow(new dashboard.RowBuilder("Traces"))
    .withPanel(
      searchTable(
        "Requests (Tempo search)",
        "One trace per request: its root span (TTFT, TPOT, tokens) and a step per llama_decode call it took part in, each linked to that call's trace",
        `{ span.${ATTR_GEN_AI_OPERATION_NAME} = "${GEN_AI_OPERATION_TEXT_COMPLETION}" }`,
      ),
    )
    .withPanel(
      searchTable(
        "Calls with operators (Tempo search)",
        "One trace per llama_decode call, linked to the requests it served; click a trace ID to show its operator DAG below",
        `{ name = "${SPAN_TOKEN}" && span.${ATTR_TOKEN_OPS_EXPORTED} = true }`,
      ).overrideByName("traceID", [
        {
          id: "links",
          value: [
            {
              title: "show this call's DAG",
              url: `/d/${DASHBOARD_UID}?var-trace_id=\${__value.raw}&\${model:queryparam}&\${__url_time_range}`,
            },
          ],
        },
      ]),
    )
    .withPanel(
      profinferPanel("ProfDAG of the chosen trace", { view: "dag" }, traceQuery(), TEMPO)
        .height(18)
        .span(24),
    )
    .withPanel(
      profinferPanel(
        "Experts chosen per token (chosen trace)",
        { view: "heatmap", heatmapSource: "trace", heatmapMode: "tokens" },
        traceQuery(),
        TEMPO,
      ).span(24),
    )
    .build();
}
