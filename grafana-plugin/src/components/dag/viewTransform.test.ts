// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DagLayout } from "./layout.js";
import { fitTransform, zoomAt } from "./viewTransform.js";

const layoutOf = (width: number, height: number): DagLayout => ({
  nodes: new Map(),
  edges: new Map(),
  width,
  height,
});

describe("ProfDAG view transform", () => {
  test("a small graph is centred at a zoom no larger than 1.2", () => {
    // act
    const t = fitTransform(layoutOf(100, 50), 800, 600);
    // assert
    assert.deepEqual(t, { k: 1.2, x: 340, y: 270 });
  });

  test("a tall graph stays readable: it is not shrunk below 0.55 and starts at the top", () => {
    // act
    const t = fitTransform(layoutOf(400, 10000), 800, 600);
    // assert
    assert.equal(t.k, 0.55);
    assert.equal(t.x, (800 - 400 * 0.55) / 2);
    assert.equal(t.y, 0);
  });

  test("a wide graph fits its width even below the readable zoom", () => {
    // act
    const t = fitTransform(layoutOf(8000, 100), 800, 600);
    // assert
    assert.equal(t.k, 0.1);
    assert.equal(t.x, 0);
  });

  test("a wheel step keeps the point under the pointer, and in and out steps cancel", () => {
    // arrange
    const start = { k: 1, x: 10, y: 20 };
    const under = (t: typeof start) => ({ x: (300 - t.x) / t.k, y: (200 - t.y) / t.k });
    // act
    const zoomedIn = zoomAt(start, 300, 200, -120);
    const back = zoomAt(zoomedIn, 300, 200, 120);
    // assert
    assert.ok(zoomedIn.k > start.k);
    const [a, b] = [under(start), under(zoomedIn)];
    assert.ok(Math.abs(a.x - b.x) < 1e-9 && Math.abs(a.y - b.y) < 1e-9);
    assert.ok(Math.abs(back.k - start.k) < 1e-9 && Math.abs(back.x - start.x) < 1e-9);
  });

  test("zoom is clamped at both ends", () => {
    assert.equal(zoomAt({ k: 7, x: 0, y: 0 }, 0, 0, -1e6).k, 8);
    assert.equal(zoomAt({ k: 0.03, x: 0, y: 0 }, 0, 0, 1e6).k, 0.02);
  });
});
