/** Running the command line in tests: in this process (main() with console captured) or as a child. */
import assert from "node:assert/strict";
import { main } from "../cli.ts";

/** Runs `main(args)` in this process; its exit code and what it printed, a line an entry. */
export async function runCli(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [], err: string[] = [];
  const orig = console.error, origLog = console.log;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  try {
    return { code: await main(args), out, err };
  } finally {
    console.error = orig;
    console.log = origLog;
  }
}

/** `args` fails with exit status `code` and exactly one clean stderr line matching `pattern`. */
export async function expectCliError(args: string[], pattern: RegExp, code = 2): Promise<void> {
  const r = await runCli(args);
  const what = args.join(" ");
  assert.equal(r.code, code, `${what}: exit ${r.code}, stderr ${JSON.stringify(r.err)}`);
  assert.equal(r.err.length, 1, `${what}: expected one line, got ${JSON.stringify(r.err)}`);
  assert.ok(!r.err[0].includes("\n") && !/\bat .*\.ts:\d+/.test(r.err[0]), `not one clean line: ${r.err[0]}`);
  assert.match(r.err[0], pattern, what);
}

/** Reads a child's stdout until `pattern` appears; `rest` resolves to what follows, at its exit. */
export async function waitForOutput(
  child: Deno.ChildProcess,
  pattern: RegExp,
): Promise<{ text: string; rest: Promise<string> }> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!pattern.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child ended before ${pattern}: ${text}`);
    text += value;
  }
  const rest = (async () => {
    let more = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return more;
      more += value;
    }
  })();
  return { text, rest };
}
