// SPDX-License-Identifier: Apache-2.0
// Node outlines by operator kind, centred on (0, 0).
import type { OpKind } from "../../data/dagModel.js";

export const KIND_LABELS: Record<OpKind, string> = {
  matmul: "matrix multiply",
  norm: "normalisation",
  attention: "attention (rope, softmax)",
  memory: "copy / rows / cache",
  elementwise: "element-wise",
  other: "other",
};

export function shapePath(kind: OpKind, w: number, h: number): string {
  const x = w / 2;
  const y = h / 2;
  const r = (rx: number) =>
    `M${-x + rx},${-y}H${x - rx}Q${x},${-y} ${x},${-y + rx}V${y - rx}Q${x},${y} ${x - rx},${y}H${-x + rx}Q${-x},${y} ${-x},${y - rx}V${-y + rx}Q${-x},${-y} ${-x + rx},${-y}Z`;
  switch (kind) {
    case "matmul":
      return r(1);
    case "norm":
      return r(y);
    case "attention": {
      const d = Math.min(12, x / 3);
      return `M${-x + d},${-y}H${x - d}L${x},0L${x - d},${y}H${-x + d}L${-x},0Z`;
    }
    case "memory": {
      const d = 8;
      return `M${-x + d},${-y}H${x}L${x - d},${y}H${-x}Z`;
    }
    case "elementwise":
      return r(7);
    default:
      return r(3);
  }
}
