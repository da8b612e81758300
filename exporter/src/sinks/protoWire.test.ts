// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import protobuf from "protobufjs";
import { I64, LEN, ProtoWriter, VARINT } from "./protoWire.js";

// an independent reader: protobufjs with a schema of the same fields
const root = protobuf.parse(`
syntax = "proto3";
message Inner { string name = 1; repeated int64 values = 2; }
message Outer {
  uint64 small = 1;
  uint64 big = 2;
  int64 negative = 3;
  double ratio = 4;
  fixed64 time = 5;
  bool flag = 6;
  Inner inner = 7;
  repeated Inner many = 8;
  bytes raw = 9;
  repeated string text = 10;
}`).root;
const Outer = root.lookupType("Outer");

test("the fields read back as a protobuf reader reads them, nested lengths of any size included", () => {
  const long = "é".repeat(300);
  const w = new ProtoWriter(8);
  w.tag(1, VARINT).varint(5);
  w.tag(2, VARINT).varint(2 ** 53 - 1);
  w.tag(3, VARINT).int64(-42);
  w.tag(4, I64).double(0.125);
  w.tag(5, I64).fixed64(1_732_870_000_123_456_789n);
  w.tag(6, VARINT).bool(true);
  w.message(7, (inner) => {
    inner.tag(1, LEN).string(long);
    inner.packedInt(2, [1, -1, 300, 2 ** 40, -(2 ** 31), -(2 ** 40) - 3, -(2 ** 53 - 1)]);
  });
  for (let i = 0; i < 3; i++) w.message(8, (m) => m.tag(1, LEN).string(`n${i}`.repeat(50 * i)));
  w.tag(9, LEN).bytes(new Uint8Array([0, 255, 7]));
  // a string kept encoded reads as written, the first time and the next
  w.tag(10, LEN).stringCached("blk.0.attn_q");
  w.tag(10, LEN).stringCached("blk.0.attn_q");
  w.tag(10, LEN).stringCached(long);
  w.tag(10, LEN).string("");
  const decoded = Outer.toObject(Outer.decode(w.finish()), {
    longs: String,
    bytes: Array,
  }) as Record<string, unknown>;
  assert.deepEqual(decoded, {
    small: "5",
    big: String(2 ** 53 - 1),
    negative: "-42",
    ratio: 0.125,
    time: "1732870000123456789",
    flag: true,
    inner: {
      name: long,
      values: [
        "1",
        "-1",
        "300",
        String(2 ** 40),
        String(-(2 ** 31)),
        String(-(2 ** 40) - 3),
        String(-(2 ** 53 - 1)),
      ],
    },
    many: [{ name: "" }, { name: "n1".repeat(50) }, { name: "n2".repeat(100) }],
    raw: [0, 255, 7],
    text: ["blk.0.attn_q", "blk.0.attn_q", long, ""],
  });
});

test("reset reuses the buffer; finish copies", () => {
  const w = new ProtoWriter(4);
  w.tag(1, VARINT).varint(1);
  const first = w.finish();
  w.reset();
  w.tag(1, VARINT).varint(2);
  assert.deepEqual([...first], [8, 1]);
  assert.deepEqual([...w.finish()], [8, 2]);
});
