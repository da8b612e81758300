// SPDX-License-Identifier: Apache-2.0
// The /metrics endpoint: a plain node:http server over one Registry, bound to loopback unless
// asked otherwise.
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";
import { UserError } from "../../errors.js";

export const DEFAULT_METRICS_ADDR = "127.0.0.1:9464";

export interface MetricsAddress {
  host: string;
  port: number;
}

/** HOST:PORT, [IPv6]:PORT or :PORT (loopback). */
export function parseMetricsAddr(value: string): MetricsAddress {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new UserError(
      `--metrics-addr: '${value}' is not HOST:PORT (e.g. 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464)`,
    );
  }
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

export interface MetricsServer {
  /** the address it listens on (the port the kernel chose when 0 was asked) */
  readonly address: MetricsAddress;
  close(): Promise<void>;
}

/** A page served beside /metrics (the host agent's /healthz): its status and JSON body. */
export type ExtraRoute = () => { status: number; body: unknown };

/**
 * Starts serving `registry` at /metrics, and each of `routes` at its path; a port in use or a bad
 * host is a UserError.
 */
export async function startMetricsServer(
  registry: Registry,
  addr: MetricsAddress,
  routes: Readonly<Record<string, ExtraRoute>> = {},
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const route = req.method === "GET" ? routes[path] : undefined;
    if (route) {
      const { status, body } = route();
      res
        .writeHead(status, { "content-type": "application/json" })
        .end(`${JSON.stringify(body)}\n`);
      return;
    }
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("profinfer serves /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: Error) =>
        res.writeHead(500, { "content-type": "text/plain" }).end(`${error.message}\n`),
    );
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      const where = `${addr.host}:${addr.port}`;
      if (error.code === "EADDRINUSE") {
        reject(
          new UserError(
            `cannot serve metrics on ${where}: the port is in use by another program. ` +
              `Stop it, or give another port with --metrics-addr HOST:PORT.`,
          ),
        );
      } else if (error.code === "EADDRNOTAVAIL" || error.code === "ENOTFOUND") {
        reject(
          new UserError(`cannot serve metrics on ${where}: no such local address (${error.code})`),
        );
      } else if (error.code === "EACCES") {
        reject(
          new UserError(
            `cannot serve metrics on ${where}: permission denied (ports below 1024 need root)`,
          ),
        );
      } else reject(new UserError(`cannot serve metrics on ${where}: ${error.message}`));
    });
    server.listen(addr.port, addr.host, () => resolveListen());
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound ? bound.port : addr.port;
  return {
    address: { host: addr.host, port },
    close: () =>
      new Promise<void>((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}
