// SPDX-License-Identifier: Apache-2.0
// A Prometheus histogram whose bucket counts are kept elsewhere (in BPF maps) and read at scrape
// time. prom-client's Histogram only learns values one observe() at a time, which is exactly the
// per-event JS call the in-kernel aggregation avoids; the Registry formats any metric that
// answers get() with its sample lines, so this class answers that for precounted buckets.
import type { Metric, Registry } from "prom-client";

export interface BucketCounts {
  labels: Record<string, string>;
  /** counts per bucket (not cumulative), one more than the bounds (the last is +Inf) */
  buckets: number[];
  sum: number;
}

interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export class AggregatedHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";

  constructor(
    readonly name: string,
    readonly help: string,
    /** bucket upper bounds, in the metric's unit */
    private readonly bounds: readonly number[],
    private readonly read: () => BucketCounts[],
  ) {}

  register(registry: Registry): void {
    registry.registerMetric(this as unknown as Metric);
  }

  get(): Promise<{
    name: string;
    help: string;
    type: string;
    values: Sample[];
    aggregator: string;
  }> {
    const values: Sample[] = [];
    for (const series of this.read()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += series.buckets[i] ?? 0;
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...series.labels, le },
          value: cumulative,
        });
      });
      cumulative += series.buckets[this.bounds.length] ?? 0;
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { ...series.labels, le: "+Inf" },
        value: cumulative,
      });
      values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels: series.labels, value: cumulative });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }

  reset(): void {
    // the counts live in the kernel: nothing to reset here
  }
}
