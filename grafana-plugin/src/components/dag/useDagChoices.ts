// SPDX-License-Identifier: Apache-2.0
// What the toolbar chooses: each choice starts at its panel option and lasts until the viewer
// changes it or the option is edited, so the toolbar explores without editing the panel.
import { useEffect, useState } from "react";
import type { ScaleType } from "../../data/colorScale.js";
import type { Aggregate } from "../../data/fold.js";
import type { DagOptions } from "../../types.js";

export interface DagChoices {
  folded: boolean;
  aggregate: Aggregate;
  critical: boolean;
  metricId: string;
  scaleType: ScaleType;
  toggleFold(): void;
  setAggregate(aggregate: Aggregate): void;
  toggleCritical(): void;
  setMetricId(metricId: string): void;
  setScaleType(scaleType: ScaleType): void;
}

function useOptionState<T>(option: T) {
  const [value, setValue] = useState(option);
  useEffect(() => setValue(option), [option]);
  return [value, setValue] as const;
}

export function useDagChoices(options: DagOptions): DagChoices {
  const [folded, setFolded] = useOptionState(options.fold);
  const [aggregate, setAggregate] = useOptionState(options.foldAggregate);
  const [critical, setCritical] = useOptionState(options.criticalPath);
  const [metricId, setMetricId] = useOptionState(options.colorMetric);
  const [scaleType, setScaleType] = useOptionState(options.colorScale);
  return {
    folded,
    aggregate,
    critical,
    metricId,
    scaleType,
    toggleFold: () => setFolded((f) => !f),
    setAggregate,
    toggleCritical: () => setCritical((c) => !c),
    setMetricId,
    setScaleType,
  };
}
