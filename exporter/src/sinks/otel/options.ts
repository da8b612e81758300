// SPDX-License-Identifier: Apache-2.0
// The OTLP options of record, attach and replay, checked before anything starts: a URL that does
// not parse, a header without '=', a bad sample spec each get one message saying what to write.
import { UserError } from "../../errors.js";
import type { EndpointConfig } from "./exporter.js";

/** The endpoint: --otlp-endpoint, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT. */
export function endpointFrom(option: string | undefined, env = process.env): string | null {
  const candidates = [
    option,
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    env.OTEL_EXPORTER_OTLP_ENDPOINT,
  ];
  for (const c of candidates) if (c !== undefined && c.trim() !== "") return c.trim();
  return null;
}

/**
 * The timeout of one export in ms: --otlp-timeout (seconds), else OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
 * else OTEL_EXPORTER_OTLP_TIMEOUT (both in ms, as the specification has them), else `fallbackMs`.
 */
export function timeoutFrom(
  optionSeconds: number | undefined,
  fallbackMs: number,
  env = process.env,
): number {
  if (optionSeconds !== undefined) return Math.round(optionSeconds * 1000);
  for (const name of ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]) {
    const value = env[name]?.trim();
    if (value === undefined || value === "") continue;
    const ms = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || ms <= 0)
      throw new UserError(
        `${name}='${value}' is not a timeout: give it in milliseconds, e.g. 10000`,
      );
    return Math.round(ms);
  }
  return fallbackMs;
}

/** Checks an endpoint URL: http://host:port (plain gRPC) or https://host:port (TLS). */
export function parseEndpoint(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UserError(
      `'${value}' is not a URL: give the OTLP gRPC endpoint as http://HOST:PORT (or https://HOST:PORT for TLS), e.g. http://localhost:4317`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UserError(
      `'${value}': the OTLP endpoint must start with http:// (plain gRPC) or https:// (TLS), e.g. http://localhost:4317`,
    );
  }
  if (!url.hostname) throw new UserError(`'${value}' names no host: write http://HOST:PORT`);
  if (url.pathname !== "/" && url.pathname !== "") {
    throw new UserError(
      `'${value}': an OTLP gRPC endpoint has no path (gRPC uses its own); write ${url.protocol}//${url.host}`,
    );
  }
  return `${url.protocol}//${url.host}`;
}

/** --otlp-header K=V, repeatable, collected into a record (a key given twice: the last wins). */
export function collectHeader(
  value: string,
  previous: Record<string, string> = {},
): Record<string, string> {
  const at = value.indexOf("=");
  if (at <= 0) {
    throw new UserError(
      `--otlp-header '${value}' has no '=': write KEY=VALUE, e.g. --otlp-header authorization="Bearer TOKEN"`,
    );
  }
  const key = value.slice(0, at).trim().toLowerCase();
  if (!/^[0-9a-z_.-]+$/.test(key)) {
    throw new UserError(
      `--otlp-header '${value}': '${key}' is not a valid gRPC metadata key (letters, digits, '-', '_', '.')`,
    );
  }
  return { ...previous, [key]: value.slice(at + 1) };
}

export function endpointConfig(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): EndpointConfig {
  return { url: parseEndpoint(url), headers, timeoutMs };
}
