// SPDX-License-Identifier: Apache-2.0
// The CLI's messages, in a module of their own: a command that needs nothing else of options.ts
// (the agent) loads without the recorder's and the exporters' modules.

export const log = (message: string): void => {
  process.stderr.write(`profinfer: ${message}\n`);
};
