// SPDX-License-Identifier: Apache-2.0
// The agent's configuration and selection, without root: every key checked, rules matched as
// documented, identities stable across restarts, container and pod read from cgroup paths.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { UserError } from "../errors.js";
import { agentConfig, mergeSettings, readConfigFile } from "./config.js";
import { instanceIdentity } from "./identity.js";
import { cgroupPath, containerOfCgroup, podUidOfCgroup, type ProcessInfo } from "./processInfo.js";
import { parseRuleFlag, selector } from "./selection.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-agent-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(text: string): string {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return path;
}

function info(overrides: Partial<ProcessInfo> = {}): ProcessInfo {
  return {
    pid: 100,
    executable: "/opt/llama/bin/llama-server",
    command: ["/opt/llama/bin/llama-server", "-m", "/models/a.gguf", "--port", "8080"],
    startTime: 1,
    cgroup: "/system.slice/llama.service",
    container: null,
    pod: null,
    environment: new Map(),
    ...overrides,
  };
}

test("a configuration file: every key known, each unknown one named with what is allowed", () => {
  const good = readConfigFile(
    file(
      "metricsAddr: 0.0.0.0:9464\ninclude:\n  - executable: '*/llama-server'\n    command: '*--port 80*'\nexclude:\n  - namespace: kube-system\nwindows:\n  every: 600\n  calls: 4\n  maxSize: 64M\n",
    ),
  );
  const config = agentConfig(good);
  assert.deepEqual(config.metricsAddr, { host: "0.0.0.0", port: 9464 });
  assert.equal(config.selection.include.length, 1);
  assert.equal(config.windows?.everyMs, 600_000);
  assert.equal(config.windows?.calls, 4);
  assert.equal(config.windows?.maxBytes, 64 << 20);
  for (const [text, message] of [
    [
      "metricsAdr: 1.2.3.4:5\n",
      /^.*: metricsAdr: unknown key; the agent's configuration takes metricsAddr, include/,
    ],
    ["windows:\n  evry: 5\n", /windows\.evry: unknown key; 'windows' takes dir, every, calls/],
    [
      "include:\n  - exe: llama\n",
      /include\[0\]: unknown field 'exe'; a rule's fields are executable, command/,
    ],
    ["include:\n  - {}\n", /include\[0\]: an empty rule would match every process/],
    ["requestIdle: soon\n", /requestIdle: "soon" is not a number of seconds/],
    ["windows:\n  maxSize: lots\n", /windows\.maxSize: "lots" is not a size/],
    ["- a\n- b\n", /the configuration is a mapping/],
    ["a: [\n", /is not valid YAML/],
  ] as const) {
    assert.throws(
      () => readConfigFile(file(text)),
      (e: Error) => e instanceof UserError && message.test(e.message),
      text,
    );
  }
});

test("flags go over the file; windows are off until a schedule or a trigger is given", () => {
  const fromFile = {
    metricsAddr: "127.0.0.1:1",
    include: [{ pod: "llm-*" }],
    windows: { calls: 3 },
  };
  const merged = mergeSettings(fromFile, {
    metricsAddr: "127.0.0.1:2",
    include: [{ command: "*x*" }],
  });
  const config = agentConfig(merged);
  assert.equal(config.metricsAddr.port, 2);
  assert.equal(config.selection.include.length, 2);
  assert.equal(config.windows, null, "calls alone start no window");
  const on = agentConfig(mergeSettings(fromFile, { windows: { tpotAbove: 0.2 } }));
  assert.equal(on.windows?.calls, 3);
  assert.equal(on.windows?.tpotAboveS, 0.2);
  assert.equal(on.windows?.everyMs, null);
});

test("selection: fields of a rule all match, rules any; an exclusion wins; * crosses /", () => {
  const llama = info();
  const node = info({ executable: "/usr/bin/node", command: ["node", "app.js"] });
  const pod = info({ pod: { uid: "u", name: "llm-7f9c", namespace: "serving" } });
  const only = selector({ include: [{ executable: "llama-server" }], exclude: [] });
  assert.equal(only(llama), true);
  assert.equal(only(node), false);
  const both = selector({
    include: [{ executable: "*/bin/llama-*", command: "*--port 8080*" }, { command: "node *" }],
    exclude: [{ namespace: "serving" }],
  });
  assert.equal(both(llama), true);
  assert.equal(both(node), true);
  assert.equal(both(pod), false, "excluded by namespace");
  assert.equal(selector({ include: [], exclude: [] })(node), true, "no include: every process");
  assert.equal(selector({ include: [{ cgroup: "/system.slice/*" }], exclude: [] })(llama), true);
  assert.deepEqual(parseRuleFlag("pod=llm-*"), { pod: "llm-*" });
  assert.throws(() => parseRuleFlag("podname=x"), /FIELD one of executable, command/);
});

test("an instance id stays across restarts, tells servers apart by their arguments, has no pid", () => {
  const a = instanceIdentity(info(), "host1");
  assert.equal(
    instanceIdentity(info({ pid: 999, startTime: 7 }), "host1").instanceId,
    a.instanceId,
  );
  const other = info({ command: [...info().command.slice(0, 4), "8081"] });
  assert.notEqual(instanceIdentity(other, "host1").instanceId, a.instanceId);
  assert.match(a.instanceId, /^host1\/llama-server\/[0-9a-f]{8}$/);
  assert.equal(a.serviceName, "llama-server");
  const named = info({ environment: new Map([["OTEL_SERVICE_NAME", "chat"]]) });
  assert.equal(instanceIdentity(named, "h").serviceName, "chat");
  const listed = info({
    environment: new Map([["OTEL_RESOURCE_ATTRIBUTES", "team=ml,service.name=embed%20er"]]),
  });
  assert.equal(instanceIdentity(listed, "h").serviceName, "embed er");
  const pod = info({ pod: { uid: "u", name: "llm-0", namespace: "serving" } });
  assert.match(instanceIdentity(pod, "h").instanceId, /^serving\/llm-0\/llama-server\//);
});

test("containers and pods from the cgroup paths of docker, containerd, CRI-O, systemd and cgroupfs", () => {
  const id = "3f2a".padEnd(64, "b");
  assert.equal(cgroupPath("0::/system.slice/docker-x.scope\n"), "/system.slice/docker-x.scope");
  assert.equal(cgroupPath("12:pids:/a\n0::/b\n"), "/b");
  for (const path of [
    `/system.slice/docker-${id}.scope`,
    `/docker/${id}`,
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_aaaa_bbbb_cccc_1234567890ab.slice/cri-containerd-${id}.scope`,
    `/kubepods/besteffort/pod1b2c3d4e-aaaa-bbbb-cccc-1234567890ab/${id}`,
    `/machine.slice/libpod-${id}.scope`,
    `/kubepods.slice/kubepods-pod1b2c3d4e_aaaa_bbbb_cccc_1234567890ab.slice/crio-${id}.scope`,
  ]) {
    assert.deepEqual(containerOfCgroup(path), { id }, path);
  }
  assert.equal(containerOfCgroup("/user.slice/user-0.slice/session-1.scope"), null);
  assert.equal(
    podUidOfCgroup(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_aaaa_bbbb_cccc_1234567890ab.slice/cri-containerd-x.scope",
    ),
    "1b2c3d4e-aaaa-bbbb-cccc-1234567890ab",
  );
  assert.equal(
    podUidOfCgroup("/kubepods/besteffort/pod1b2c3d4e-aaaa-bbbb-cccc-1234567890ab/abc"),
    "1b2c3d4e-aaaa-bbbb-cccc-1234567890ab",
  );
  assert.equal(podUidOfCgroup(`/system.slice/docker-${id}.scope`), null);
});
