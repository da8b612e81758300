// SPDX-License-Identifier: Apache-2.0
// Attaching what probePlan.ts planned through the addon: single uprobes by symbol or offset, and
// sets of sites as uprobe_multi links (Linux 6.6+) where the kernel has them; the step probes
// kept so that record --toggle-op-probes can take them off and put them back.
import type { LibraryRoles } from "../discovery/libraries.js";
import type { NativeTracer } from "./nativeTracer.js";
import type { FunctionProbe, ProbeSite } from "./probePlan.js";

type SiteHandler = "op_enter" | "op_method_enter" | "op_exit" | "step_site";

/** A switch of the step probes: when it began and ended (CLOCK_MONOTONIC ns, decimal). */
export interface StepProbeSwitch {
  on: boolean;
  beganNs: string;
  monotonicNs: string;
}

export function stepProbeError(site: ProbeSite, error: string): string {
  return `step probe in ${site.symbol} (file offset 0x${site.offset.toString(16)}): ${error}`;
}

export class ProbeAttacher {
  /** the step probes attached, to attach again after toggleStepProbes took them off */
  private readonly stepProbes: { path: string; sites: ProbeSite[] }[] = [];
  private stepProbesOn = true;

  constructor(
    private readonly tracer: NativeTracer,
    private readonly uprobeMulti: boolean,
    private readonly warn: (message: string) => void,
  ) {}

  /** A function probe, at the probe site discovery found for its symbol; false when it failed. */
  attachFunction(roles: LibraryRoles, probe: FunctionProbe, cookie = 0): boolean {
    const site = roles.probeSites.get(probe.symbol);
    const error = this.tracer.attachUprobe(
      probe.handler,
      roles.path,
      probe.symbol,
      cookie,
      site?.fileOffset ?? 0,
    );
    if (error) this.warn(error);
    return !error;
  }

  /**
   * Attaches each of `handlers` at every site of `path`. With uprobe_multi, one link per handler
   * covers them all; when the kernel refuses a set (one site that cannot carry a probe spoils
   * the link), the set is split in halves until the culprits are found, so a few links still
   * cover everything else. Returns the sites attached; `failed` hears of each other one.
   */
  attachSites<T extends ProbeSite>(
    handlers: readonly SiteHandler[],
    path: string,
    sites: T[],
    failed: (site: T, error: string) => void,
  ): T[] {
    if (sites.length === 0) return [];
    if (!this.uprobeMulti) {
      return sites.filter((site) => {
        const errors = handlers.map((h) =>
          this.tracer.attachUprobe(h, path, site.symbol, site.cookie, site.offset),
        );
        const error = errors.find(Boolean);
        if (error) failed(site, error.replace(/^.*: /, ""));
        return !error;
      });
    }
    const offsets = sites.map((s) => s.offset);
    const cookies = sites.map((s) => s.cookie);
    let error = "";
    let links = 0;
    for (const h of handlers) {
      error = this.tracer.attachUprobeMulti(h, path, offsets, cookies);
      if (error) break;
      links++;
    }
    if (!error) return sites;
    // an entry link without its return twin would leave operators open: take it out again
    for (; links > 0; links--) this.tracer.dropLastMultiLink();
    if (sites.length === 1) {
      failed(sites[0]!, error.replace(/^.*: /, ""));
      return [];
    }
    const half = Math.ceil(sites.length / 2);
    return [sites.slice(0, half), sites.slice(half)].flatMap((part) =>
      this.attachSites(handlers, path, part, failed),
    );
  }

  /** Step probes on `sites` of `path`, kept for toggling; returns the sites attached. */
  attachStepSites<T extends ProbeSite>(
    path: string,
    sites: T[],
    failed: (site: T, error: string) => void,
  ): T[] {
    return this.attachSites(["step_site"], path, sites, failed);
  }

  /** Keeps the step probes that went on in `path`, to toggle them later. */
  keepStepProbes(path: string, sites: readonly ProbeSite[]): void {
    this.stepProbes.push({
      path,
      sites: sites.map(({ symbol, offset, cookie }) => ({ symbol, offset, cookie })),
    });
  }

  get hasStepProbes(): boolean {
    return this.stepProbes.length > 0;
  }

  /**
   * Takes the step probes off, or puts them back, and says when: taking uprobes off waits for the
   * kernel (tens of ms for a few hundred sites), so calls between the two times ran with some
   * probes and not others. Null when there are none to toggle.
   */
  toggleStepProbes(): StepProbeSwitch | null {
    if (this.stepProbes.length === 0) return null;
    const beganNs = process.hrtime.bigint().toString();
    if (this.stepProbesOn) this.tracer.detachProgram("step_site");
    else {
      for (const { path, sites } of this.stepProbes) {
        this.attachStepSites(path, sites, (site, error) => this.warn(stepProbeError(site, error)));
      }
    }
    this.stepProbesOn = !this.stepProbesOn;
    return { on: this.stepProbesOn, beganNs, monotonicNs: process.hrtime.bigint().toString() };
  }
}
