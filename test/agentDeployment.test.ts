// SPDX-License-Identifier: Apache-2.0
// The agent's deployment files, checked by the tools their platforms use: the systemd unit by
// systemd-analyze verify, and run with exactly its capabilities (setpriv) against a real
// llama-server; the Kubernetes manifest and the Helm chart (rendered by helm, built by set-up
// from test/stack/helm) against the Kubernetes API's schemas with kubernetes-validate --strict
// (PyPI, installed by set-up), each shown to fail on a misspelt field; the configuration each
// ships read by the agent's own configuration reader.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import * as N from "@profinfer/contract";
import { pythonToolBinary, readAgentConfigFile } from "@profinfer/exporter";
import { eventually, serverOnPort, startAgent } from "./support/agent.js";
import { freePort, manifest, repoRoot, stack, tinyModels } from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-agent-deploy-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const unitPath = join(repoRoot, "provisioning", "agent", "profinfer-agent.service");
const manifestPath = join(repoRoot, "provisioning", "kubernetes", "profinfer-agent.yaml");
const chart = join(repoRoot, "provisioning", "helm", "profinfer-agent");

/** Capability numbers (linux/capability.h) of the names a unit may give. */
const CAPABILITY_BITS: Record<string, number> = {
  CAP_DAC_READ_SEARCH: 2,
  CAP_KILL: 5,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_ADMIN: 21,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
};
const capabilityMask = (names: string[]) =>
  names.reduce((m, n) => m | (1n << BigInt(CAPABILITY_BITS[n]!)), 0n);

const kubernetesValidate = (file: string) =>
  spawnSync(pythonToolBinary(manifest(), "kubernetes-validate"), ["--strict", file], {
    encoding: "utf8",
  });

/** The agent.yaml a ConfigMap of `documents` carries, read by the agent's own reader. */
function checkShippedConfig(text: string, what: string): void {
  const map = parseAllDocuments(text)
    .map((d) => d.toJS() as { kind?: string; data?: Record<string, string> })
    .find((d) => d?.kind === "ConfigMap");
  assert.ok(map?.data?.["agent.yaml"], `${what}: a ConfigMap with agent.yaml`);
  const file = join(scratch, `${what}.yaml`);
  writeFileSync(file, map.data["agent.yaml"]);
  const config = readAgentConfigFile(file);
  assert.equal(config.metricsAddr, "0.0.0.0:9464", `${what}: metrics on the pod's port`);
}

describe("the agent's deployment files", () => {
  test("the systemd unit passes systemd-analyze verify, and its capabilities are enough to follow a llama-server", async () => {
    // the unit as shipped, its ExecStart at this checkout's CLI (verify wants the program to exist)
    const unit = join(scratch, "profinfer-agent.service");
    const text = readFileSync(unitPath, "utf8");
    const here = text.replace(
      "/usr/local/bin/profinfer",
      join(repoRoot, "exporter", "bin", "profinfer.js"),
    );
    writeFileSync(unit, here);
    const verified = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    assert.equal(verified.status, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), "", "no warning");
    // a misspelt directive is said: the check is real
    writeFileSync(unit, here.replace("ProtectSystem=strict", "ProtectSytem=strict"));
    const misspelt = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    assert.match(misspelt.stderr, /Unknown key '?ProtectSytem'? in section \[Service\]/);
    copyFileSync(unitPath, join(scratch, "shipped.service"));

    // the agent with only the unit's capabilities (setpriv: bounding, inheritable and ambient)
    const caps = /^CapabilityBoundingSet=(.*)$/m.exec(text)![1]!.split(/\s+/);
    assert.deepEqual(/^AmbientCapabilities=(.*)$/m.exec(text)![1]!.split(/\s+/), caps);
    const setpriv = (names: string[]) => {
      const list = ["-all", ...names.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`)].join(
        ",",
      );
      return ["setpriv", `--bounding-set=${list}`, `--inh-caps=${list}`, `--ambient-caps=${list}`];
    };
    const marker = mkdtempSync(join(scratch, "caps-"));
    const model = join(marker, "tiny-llama.gguf");
    copyFileSync(tinyModels().find((m) => m.arch === "llama")!.path, model);
    const server = await serverOnPort(model, await freePort(), ["-c", "512"]);
    try {
      const agent = await startAgent(
        ["--include", `command=*${marker}*`],
        undefined,
        setpriv(caps),
      );
      try {
        await eventually("followed with the unit's capabilities", async () =>
          (await agent.series()).find(
            (s) =>
              s.name === N.PROCESS_INFO && s.labels[N.LABEL_PID] === String(server.process.pid),
          ),
        );
        const effective = /CapEff:\s+([0-9a-f]+)/.exec(
          readFileSync(`/proc/${agent.pid}/status`, "utf8"),
        )![1]!;
        assert.equal(
          BigInt(`0x${effective}`),
          capabilityMask(caps),
          "only the unit's capabilities",
        );
      } finally {
        await agent.stop();
      }
      // without CAP_SYS_ADMIN the kernel refuses the uprobes (docs/agent.md "Privileges")
      const fewer = caps.filter((c) => c !== "CAP_SYS_ADMIN");
      const weak = await startAgent(
        ["--include", `command=*${marker}*`],
        undefined,
        setpriv(fewer),
      );
      try {
        await eventually("uprobes refused without CAP_SYS_ADMIN", async () =>
          /uprobe on llama_decode in .*: Permission denied/.test(weak.log()) ? true : undefined,
        );
      } finally {
        await weak.stop();
      }
    } finally {
      await server.stop();
    }
  });

  test("the Kubernetes manifest validates against the API schema, and a misspelt field does not", () => {
    const ok = kubernetesValidate(manifestPath);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /daemonset\/profinfer-agent against version/);
    const text = readFileSync(manifestPath, "utf8");
    assert.match(text, /hostPID: true/);
    const bad = join(scratch, "bad.yaml");
    writeFileSync(bad, text.replace("hostPID: true", "hostPid: true"));
    const refused = kubernetesValidate(bad);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stdout + refused.stderr, /hostPid/);
    checkShippedConfig(text, "manifest");
  });

  test("the Helm chart lints, renders and validates against the API schema with its defaults and with values", () => {
    const helm = stack("helm");
    const lint = spawnSync(helm, ["lint", chart], { encoding: "utf8" });
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    for (const [name, values] of [
      ["defaults", []],
      ["values", ["--set", "image.tag=1.2.3", "--set", "priorityClassName=system-node-critical"]],
    ] as const) {
      const rendered = execFileSync(
        helm,
        ["template", "pa", chart, "--namespace", "profinfer", ...values],
        { encoding: "utf8" },
      );
      const file = join(scratch, `chart-${name}.yaml`);
      writeFileSync(file, rendered);
      const validated = kubernetesValidate(file);
      assert.equal(validated.status, 0, validated.stdout + validated.stderr);
      assert.match(validated.stdout, /daemonset\/profinfer-agent against version/);
      checkShippedConfig(rendered, `chart-${name}`);
      if (name === "values") {
        assert.match(rendered, /image: "profinfer-agent:1\.2\.3"/);
        assert.match(rendered, /priorityClassName: system-node-critical/);
      }
    }
    // the example configuration beside the unit reads too
    const example = readAgentConfigFile(join(repoRoot, "provisioning", "agent", "agent.yaml"));
    assert.ok(example.windows?.every);
  });
});
