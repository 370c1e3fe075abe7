/**
 * The command line's flags: one table per command that both the parser (`parseOptions`) and `--help`
 * (`commandHelp`) read, so what is accepted and what is documented are the same list.
 *
 * @module
 */
import { DEFAULT_TRAIN, kebab, PRESETS, type TrainConfig } from "../train/config.ts";
import { UsageError } from "./errors.ts";
import { DEFAULT_SAMPLING } from "../model/generate.ts";
import { DEFAULT_MAX_TOKENS } from "../train/sample.ts";

/** One flag: its value form ("" for a switch), one line of help, and its default when it has one. */
export interface Flag {
  readonly value: string;
  readonly help: string;
  readonly default?: string;
}

/** Flags by name (kebab case, without the dashes). */
export type FlagTable = Readonly<Record<string, Flag>>;

/** Value forms of numeric flags: the parser converts these and refuses what is not a number. */
const NUMERIC = new Set(["N", "X", "P"]);

/** Whether a flag takes a number. */
export function isNumeric(flag: Flag): boolean {
  return NUMERIC.has(flag.value);
}

/**
 * argv with each numeric flag's negative value joined to it (`--lr -1` becomes `--lr=-1`), so the
 * parser, which refuses a separate value that starts with a dash as ambiguous, passes it on to the
 * range check. Only a value that parses as a number is joined; nothing after `--` is touched.
 */
export function joinNegativeNumbers(argv: readonly string[], table: FlagTable): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1];
    if (a === "--") return [...out, ...argv.slice(i)];
    const flag = a.startsWith("--") && !a.includes("=") ? table[a.slice(2)] : undefined;
    if (
      flag !== undefined && Object.hasOwn(table, a.slice(2)) && isNumeric(flag) && next !== undefined &&
      next.startsWith("-") && next.trim() !== "" && !Number.isNaN(Number(next))
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * `deno task train --help`: each key's value form ("" for a switch) and one line of help. The mapped type
 * makes a TrainConfig key without help a type error, so the help cannot fall behind the config.
 */
export const TRAIN_FLAG_HELP: {
  readonly [K in keyof TrainConfig]-?: readonly [value: string, help: string];
} = {
  data: ["FILE", "training text (UTF-8); default: the embedded generated language"],
  val: ["FILE", "validation text; default: the last 10% of the data"],
  allow_invalid_utf8: [
    "",
    "decode --data and --val bytes that are not UTF-8 as U+FFFD instead of refusing the file",
  ],
  tokenizer: [
    "char|word|bpe|gpt2",
    "char: code points; word: words and punctuation; bpe: byte-level BPE; gpt2: GPT-2's (--vocab-file)",
  ],
  vocab_size: ["N", "vocabulary size of the word and bpe tokenizers (bpe: 512 when not given)"],
  vocab_file: ["DIR", "--tokenizer gpt2: a folder of GPT-2's vocab.json and merges.txt (Hugging Face's)"],
  examples: ["stream|lines", "stream: windows of one token stream; lines: one example per line, padded"],
  n_layer: ["N", "transformer blocks"],
  n_head: ["N", "attention heads"],
  n_embd: ["N", "channels, a multiple of --n-head"],
  block_size: ["N", "context length in tokens"],
  batch_size: ["N", "sequences per micro-batch"],
  grad_accum: ["N", "micro-batches per optimizer step, all in the step's one GPU submission"],
  dropout: ["P", "dropout on the embeddings, attention probabilities and residual branches"],
  bias: ["", "biases in the Linear and LayerNorm layers (--no-bias: none)"],
  steps: ["N", "optimizer steps in total, counting the steps before a --resume"],
  lr: ["X", "peak learning rate"],
  min_lr: ["X", "learning rate at the end of the cosine decay (with --lr alone: lr / 10)"],
  warmup: ["N", "steps of linear warmup"],
  lr_decay_steps: ["N", "steps of cosine decay (default: --steps)"],
  weight_decay: ["X", "AdamW weight decay of the matrices and embeddings"],
  beta1: ["X", "AdamW beta1"],
  beta2: ["X", "AdamW beta2"],
  grad_clip: ["X", "clip the global gradient norm to X (0: off)"],
  dtype: ["float32|float16", "float16: f16 operands, f32 arithmetic and master weights, loss scaling"],
  eval_interval: ["N", "evaluate and save a checkpoint every N steps"],
  eval_iters: ["N", "validation batches per evaluation"],
  log_interval: ["N", "read the training loss back every N steps"],
  seed: ["N", "seed of the initialisation, data order, dropout and generated language"],
  out: ["DIR", "run folder: checkpoints, log.jsonl, loss.svg"],
  resume: ["", "continue the run in --out with its saved settings (model, data, optimizer, schedule)"],
  overwrite: ["", "train afresh into an --out that holds a run, moving its files to DIR/replaced-TIME/"],
  init_from: ["FILE", "fine-tune from this checkpoint's weights, shape and tokenizer (step 0)"],
  sample_chars: ["N", "tokens of sample text printed at the end (0: none)"],
  mode: [
    "teacher-forcing|free-running|scheduled-sampling",
    "how the inputs are formed: gold tokens, the model's own, or a decaying mix",
  ],
  prefix: ["N", "free-running: gold tokens before the model's own (default: block size / 4)"],
  fr_decode: ["argmax|sample", "free-running: the model's next token is its argmax or a sample"],
  ss_decode: ["argmax|sample", "scheduled-sampling: pass 1's prediction is its argmax or a sample"],
  ss_schedule: [
    "linear|exponential|inverse-sigmoid",
    "scheduled-sampling: how ε, the chance of a gold input, decays",
  ],
  ss_k: ["X", "ε's parameter k (default by schedule; see src/train/modes.ts)"],
  ss_c: ["X", "linear ε's slope per step (default: (k - ss-min) / steps)"],
  ss_min: ["X", "floor of ε, in [0, 1]"],
};

/** The `train` flags: `--preset` and every TrainConfig key (kebab case) with its default. */
export function trainFlags(): FlagTable {
  const table: Record<string, Flag> = {
    preset: {
      value: "NAME",
      help: `a named recipe, under any other flag: ${Object.keys(PRESETS).join(", ")} (nanoGPT's)`,
    },
  };
  for (const [key, [value, help]] of Object.entries(TRAIN_FLAG_HELP)) {
    const d = DEFAULT_TRAIN[key as keyof TrainConfig];
    table[kebab(key)] = { value, help, default: d === undefined || value === "" ? undefined : String(d) };
  }
  return table;
}

/** The TrainConfig key of a `train` flag, or undefined for `--preset` and extra flags. */
export function trainKey(flag: string): keyof TrainConfig | undefined {
  const key = flag.replaceAll("-", "_");
  return Object.hasOwn(TRAIN_FLAG_HELP, key) ? key as keyof TrainConfig : undefined;
}

/** How eval and sample read a checkpoint that is not tforce's own (nanoGPT's ckpt.pt, a bare state_dict). */
const LOAD_FLAGS: FlagTable = {
  "n-head": { value: "N", help: "attention heads of a safetensors state_dict with no config metadata" },
  meta: { value: "FILE", help: "nanoGPT's meta.pkl (char tokenizer) for a checkpoint with no tokenizer" },
  "vocab-file": { value: "DIR", help: "GPT-2's vocab.json + merges.txt for a checkpoint with no tokenizer" },
};

/** `eval`'s flags. */
export const EVAL_FLAGS: FlagTable = {
  checkpoint: {
    value: "FILE",
    help: "model checkpoint to score (required): tforce's .safetensors, nanoGPT's ckpt.pt or state_dict",
  },
  data: {
    value: "FILE",
    help: "text to score, with the checkpoint's tokenizer (default: the held-out text of its training run)",
  },
  "allow-invalid-utf8": {
    value: "",
    help: "decode --data bytes that are not UTF-8 as U+FFFD instead of refusing the file (not --exposure)",
  },
  "batch-size": {
    value: "N",
    help: "windows per GPU batch (default 8; --exposure: 16, fewer if their logits exceed a binding)",
  },
  exposure: {
    value: "",
    help: "exposure bias: per position, the excess loss KL(p* || model) after the gold history and after " +
      "the model's own continuation, p* an oracle's true next-character law (the built-in language's for a " +
      "char model trained on it, or --oracle); without an oracle only the drift of the predictions",
  },
  oracle: {
    value: "FILE",
    help: "--exposure: the true law of --data's language, an order-k character chain (JSON; needs --data)",
  },
  prefix: { value: "N", help: "--exposure: gold prefix length (default: block size / 4)" },
  "fr-decode": {
    value: "sample|argmax",
    help: "--exposure: how the model continues (sample: temperature 1)",
    default: "sample",
  },
  windows: { value: "N", help: "--exposure: windows of the data measured", default: "64" },
  seed: { value: "N", help: "--exposure: seed of --fr-decode sample", default: "1337" },
  plot: { value: "FILE", help: "--exposure: the SVG plot (default: CHECKPOINT.exposure.svg)" },
  rollouts: {
    value: "FILE",
    help: "--exposure: write each window's continuation (T - P token ids) as a JSON array of arrays",
  },
  ...LOAD_FLAGS,
};

/** `sample`'s flags. */
export const SAMPLE_FLAGS: FlagTable = {
  checkpoint: {
    value: "FILE",
    help: "model checkpoint to sample from (required): tforce's .safetensors, nanoGPT's ckpt.pt, ...",
  },
  prompt: { value: "TEXT", help: "text the sample continues (default: none)" },
  "max-tokens": { value: "N", help: "tokens to generate", default: String(DEFAULT_MAX_TOKENS) },
  temperature: {
    value: "X",
    help: "softmax temperature (0: argmax)",
    default: String(DEFAULT_SAMPLING.temperature),
  },
  "top-k": {
    value: "N",
    help: "sample among the k likeliest tokens (0: all)",
    default: String(DEFAULT_SAMPLING.topK),
  },
  "top-p": {
    value: "P",
    help: "then among the fewest likeliest tokens whose probability reaches P (nucleus; 1: all)",
    default: String(DEFAULT_SAMPLING.topP),
  },
  "num-samples": {
    value: "N",
    help: "independent samples of the prompt; more than 1: each printed whole, then a line of dashes",
    default: "1",
  },
  seed: { value: "N", help: "sampling seed", default: String(DEFAULT_SAMPLING.seed) },
  ...LOAD_FLAGS,
};

/** `experiment`'s own flags (it takes every `train` flag too). */
export const EXPERIMENT_FLAGS: FlagTable = {
  report: { value: "DIR", help: "folder of report.md and its SVG plots (default: OUT/experiment)" },
  seeds: {
    value: "N",
    help:
      "seeds per mode (--seed, --seed + 1, ...: initialisation and data order; the data stays the same); " +
      "figures are means with 95% t intervals across them",
    default: "5",
  },
  modes: {
    value: "LIST",
    help: "comma-separated modes to compare (default: all three)",
  },
  oracle: {
    value: "FILE",
    help: "an order-k character chain (JSON): the true law for the exposure figures; without --data the " +
      "training text is sampled from it",
  },
  "oracle-chars": {
    value: "N",
    help: "--oracle without --data: characters of training text sampled from the oracle",
    default: "300000",
  },
  target: {
    value: "X",
    help: "validation loss that counts as converged (default: 10% of the way from teacher forcing's worst " +
      "best loss to ln V)",
  },
  window: { value: "N", help: "final steps of the training-loss noise (default: steps / 4, at least 10)" },
  windows: { value: "N", help: "validation windows of the exposure curves", default: "64" },
  "noise-draws": { value: "N", help: "draws of the gradient noise scale estimate", default: "4" },
  "block-sizes": {
    value: "LIST",
    help: "block sizes of the step-time table (claim 4); 'none' skips it",
    default: "16,32,64,128,256",
  },
  title: { value: "TEXT", help: "the report's title" },
  note: { value: "TEXT", help: "a paragraph under the title" },
};

/**
 * nanoGPT's names for flags named differently here (train.py's and sample.py's config keys in kebab case),
 * accepted as aliases: `--max-iters 5000` is `--steps 5000`. Every flag may also be written in snake case,
 * nanoGPT's configurator form (`--max_iters=5000`, `--n_layer 6`).
 */
export const NANOGPT_ALIASES: {
  readonly train: Readonly<Record<string, string>>;
  readonly sample: Readonly<Record<string, string>>;
} = {
  train: {
    "max-iters": "steps",
    "learning-rate": "lr",
    "out-dir": "out",
    "warmup-iters": "warmup",
    "lr-decay-iters": "lr-decay-steps",
    "gradient-accumulation-steps": "grad-accum",
  },
  sample: { "max-new-tokens": "max-tokens" },
};

/**
 * The help's lines on `aliases`: "nanoGPT's names work too: --max-iters (--steps), ...", each alias whole
 * on one line.
 */
export function aliasHelp(aliases: Readonly<Record<string, string>>, snakeExample: string): string {
  const parts = [
    "nanoGPT's names work too:",
    ...Object.entries(aliases).map(([alias, flag]) => `--${alias} (--${flag}),`),
    `and any flag in snake case (${snakeExample}).`,
  ];
  const lines = [""];
  for (const p of parts) {
    const last = lines.length - 1;
    if (lines[last] && lines[last].length + 1 + p.length > HELP_COLUMNS) lines.push(p);
    else lines[last] = lines[last] ? `${lines[last]} ${p}` : p;
  }
  return lines.join("\n");
}

/**
 * argv with each flag written as the table names it: snake case becomes kebab case and an alias becomes
 * its flag (`--max_iters=9` -> `--steps=9`). A flag that is neither in `table` nor an alias (nor the
 * `--no-` form of a switch) throws a {@linkcode FlagError} naming it as given, with the closest accepted
 * name when one is near. Nothing after `--` is touched.
 */
export function canonicalFlags(
  argv: readonly string[],
  table: FlagTable,
  aliases: Readonly<Record<string, string>> = {},
): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") return [...out, ...argv.slice(i)];
    if (!a.startsWith("--")) {
      out.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const given = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const name = given.replaceAll("_", "-");
    const flag = Object.hasOwn(aliases, name) ? aliases[name] : name;
    const negated = flag.startsWith("no-") && table[flag.slice(3)]?.value === "";
    if (!Object.hasOwn(table, flag) && !(negated && Object.hasOwn(table, flag.slice(3)))) {
      const switches = Object.keys(table).filter((k) => table[k].value === "").map((k) => `no-${k}`);
      throw new FlagError(
        given,
        closestFlag(name, [...Object.keys(table), ...switches, ...Object.keys(aliases)]),
      );
    }
    out.push(`--${flag}${eq < 0 ? "" : a.slice(eq)}`);
  }
  return out;
}

/** A flag no command table or alias names: "Unknown option '--max-iter' (did you mean --max-iters?)". */
export class FlagError extends UsageError {
  /** The flag as given, without its dashes. */
  readonly flag: string;
  /** The closest accepted flag, if one is near. */
  readonly suggestion?: string;
  /** Names `flag` and the suggestion. */
  constructor(flag: string, suggestion?: string) {
    super(
      `Unknown option '--${flag}'` +
        (suggestion ? ` (did you mean --${suggestion}?)` : " (--help lists the flags)"),
    );
    this.name = "FlagError";
    this.flag = flag;
    this.suggestion = suggestion;
  }
}

/**
 * The name in `names` nearest `name` by edit distance (insertions, deletions, substitutions and swaps of
 * neighbours), when it is within a third of the name's length (at least 1 edit, at most 3); else undefined.
 * Ties go to the earlier name.
 */
export function closestFlag(name: string, names: readonly string[]): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  let best: string | undefined, bestD = limit + 1;
  for (const n of names) {
    const d = editDistance(name.toLowerCase(), n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best;
}

/** Optimal string alignment distance: Levenshtein's edits plus swapping two neighbouring characters. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** node:util parseArgs options for a table: switches are booleans, everything else a string. */
export function parseOptions(table: FlagTable): Record<string, { type: "string" | "boolean" }> {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const [name, f] of Object.entries(table)) {
    options[name] = { type: f.value === "" ? "boolean" : "string" };
  }
  return options;
}

/** Whether argv asks for help (`--help` or `-h` anywhere). */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

/**
 * A command's help: its usage line, what it does, then one line per flag (`--name VALUE  help (default
 * D)`), in table order.
 */
export function commandHelp(usage: string, summary: string, ...tables: FlagTable[]): string {
  const rows = tables.flatMap((t) =>
    Object.entries(t).map(([name, f]) => ({
      left: `--${name}${f.value ? ` ${f.value}` : ""}`,
      right: `${f.help}${f.default !== undefined ? ` (default ${f.default})` : ""}`,
    }))
  );
  const width = Math.min(26, Math.max(...rows.map((r) => r.left.length)));
  const indent = " ".repeat(width + 4);
  const lines = rows.map((r) => {
    const right = wrap(r.right, HELP_COLUMNS - indent.length).join(`\n${indent}`);
    return r.left.length > width ? `  ${r.left}\n${indent}${right}` : `  ${r.left.padEnd(width)}  ${right}`;
  });
  return [`usage: ${usage}`, "", summary, "", ...lines, "", EXIT_STATUS].join("\n");
}

/** The exit statuses of every command, at the end of the overview and of each command's help. */
export const EXIT_STATUS: string = [
  "exit status:",
  "  0    success (also --help)",
  "  1    a failure during a run: a GPU error, a write that failed",
  "  2    bad input: flags, data files (missing, empty, not UTF-8), checkpoints, configurations too",
  "       large for the adapter; one line on stderr names the problem and the value given",
  "  3    training diverged (NaN loss)",
  "  130  a second Ctrl-C in train (the first finishes the step in flight, saves it and exits 0)",
].join("\n");

/** Help lines stay within this many columns. */
const HELP_COLUMNS = 100;

/** `text` broken at spaces into lines of at most `width` characters (a longer word keeps its own line). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines;
}

/** The overview: `tforce --help`, `help` or no command at all. */
export const OVERVIEW: string = [
  "usage: deno task train | eval | sample | experiment [flags]   (each with --help for its flags)",
  "",
  "  train       train a GPT with teacher forcing (or free-running / scheduled sampling) on a text file,",
  "              or on the embedded generated language when --data is not given",
  "  eval        a checkpoint's mean next-token loss on a text; --exposure: its exposure bias",
  "  sample      generate text from a checkpoint",
  "  experiment  train the three input modes on the same data and seed; a Markdown report with plots",
  "",
  EXIT_STATUS,
].join("\n");
