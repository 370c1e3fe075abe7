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

/** Library options whose flag is not their name in kebab case. */
const FLAG_OF: Readonly<Record<string, string>> = { oracleFile: "oracle", decode: "fr-decode" };

/**
 * The flag of a TrainConfig key or library option: `lr_decay_steps` -> `--lr-decay-steps`,
 * `maxTokens` -> `--max-tokens`, `oracleFile` -> `--oracle`.
 */
export function flagName(key: string): string {
  return `--${FLAG_OF[key] ?? kebab(key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`))}`;
}

/** The one line the command line prints for `e`: its message's first line, settings written as flags. */
export function errorLine(e: unknown): string {
  if (e instanceof ConfigError) return e.wordedWith(flagName).split("\n")[0];
  return (e as Error)?.message?.split("\n")[0] ?? String(e);
}
