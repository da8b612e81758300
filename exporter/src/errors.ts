// SPDX-License-Identifier: Apache-2.0

/**
 * An error a user can hit and act on: the CLI prints its message alone, without a stack trace.
 * The message says what happened, what it means and what to do.
 */
export class UserError extends Error {
  override name = "UserError";
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}
