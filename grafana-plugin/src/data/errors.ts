// SPDX-License-Identifier: Apache-2.0
// Typed errors of the data -> model functions. The panel shows their message instead of a blank
// view; each says what is missing and what query gives it.

/** A frame lacks a field a view needs. */
export class MissingFieldError extends Error {
  override readonly name = "MissingFieldError";
  constructor(
    readonly field: string,
    readonly frame: string,
    readonly hint: string,
  ) {
    super(`The ${frame} frame has no "${field}" field. ${hint}`);
  }
}

/** The query returned no frame the view can read. */
export class NoUsableFrameError extends Error {
  override readonly name = "NoUsableFrameError";
  constructor(message: string) {
    super(message);
  }
}

/** The frames are of the right kind but hold nothing to draw (no operator spans, no selections). */
export class EmptyModelError extends Error {
  override readonly name = "EmptyModelError";
  constructor(message: string) {
    super(message);
  }
}

/** A value in a field is not what its name promises (a shape that is not an int array ...). */
export class BadValueError extends Error {
  override readonly name = "BadValueError";
  constructor(message: string) {
    super(message);
  }
}

export type ModelError = MissingFieldError | NoUsableFrameError | EmptyModelError | BadValueError;

export function isModelError(error: unknown): error is ModelError {
  return (
    error instanceof MissingFieldError ||
    error instanceof NoUsableFrameError ||
    error instanceof EmptyModelError ||
    error instanceof BadValueError
  );
}
