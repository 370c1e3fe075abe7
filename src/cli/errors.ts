/**
 * The command line's error wording: the library names TrainConfig settings by their keys
 * ({@linkcode ConfigError}); the command line writes each as its flag, so `lr_decay_steps must be a
 * positive integer` reaches the user as `--lr-decay-steps must be a positive integer`.
 *
 * @module
 */
import { ConfigError, kebab } from "../train/config.ts";
import { InputError } from "../util/errors.ts";

/** A usage error (a flag the command cannot take): bad input, printed as one line, exit code 2. */
export class UsageError extends InputError {}

/** The flag of a TrainConfig key: `lr_decay_steps` -> `--lr-decay-steps`. */
export function flagName(key: string): string {
  return `--${kebab(key)}`;
}

/** The one line the command line prints for `e`: its message's first line, settings written as flags. */
export function errorLine(e: unknown): string {
  if (e instanceof ConfigError) return e.wordedWith(flagName).split("\n")[0];
  return (e as Error)?.message?.split("\n")[0] ?? String(e);
}
