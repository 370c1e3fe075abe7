/** The benchmark registry: module name -> builder. `deno task bench NAME...` filters by these names. */
import type { BenchBuilder } from "./harness.ts";
import { build as attention } from "./attention.ts";
import { build as columns } from "./columns.ts";
import { build as convert } from "./convert.ts";
import { build as crossentropy } from "./crossentropy.ts";
import { build as decode } from "./decode.ts";
import { build as encoder } from "./encoder.ts";
import { build as gather } from "./gather.ts";
import { build as gelu } from "./gelu.ts";
import { build as gradstats } from "./gradstats.ts";
import { build as layernorm } from "./layernorm.ts";
import { build as matmul } from "./matmul.ts";
import { build as modes } from "./modes.ts";
import { build as optimizer } from "./optimizer.ts";
import { build as residual } from "./residual.ts";
import { build as sample } from "./sample.ts";
import { build as step } from "./step.ts";

/** Every kernel benchmark, in data-path order, then the whole training step. */
export const benchModules: Readonly<Record<string, BenchBuilder>> = {
  gather,
  encoder,
  layernorm,
  matmul,
  attention,
  gelu,
  residual,
  crossentropy,
  columns,
  optimizer,
  convert,
  sample,
  decode,
  modes,
  gradstats,
  step,
};
