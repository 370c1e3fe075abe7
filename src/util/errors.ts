/**
 * Error types the library throws for what the caller gave it, so a command line can tell bad input
 * (exit status 2) from a failure during a run (exit status 1) without reading message text.
 *
 * @module
 */

/** Bad input: a flag, a file, a checkpoint or a configuration the run cannot use. One-line message. */
export class InputError extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}
