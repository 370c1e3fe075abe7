// File tests write under Deno.makeTempDir(): run with --allow-write=/tmp --allow-read=/tmp in addition to
// the usual --allow-read=. --allow-env.
import { WriteError, writeFileAtomic } from "../src/io/atomic.ts";
import { JsonlLog, readJsonl } from "../src/io/log.ts";
import { type LinePlotOptions, linePlotSvg } from "../src/io/svg.ts";

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

async function rejects(fn: () => Promise<unknown>, what: string): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error(`${what}: expected an error`);
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tforce-io-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---- atomic writes ----

Deno.test("writeFileAtomic creates, then replaces the target whole, leaving no temp files", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/model.safetensors`;
    const big = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
    await writeFileAtomic(path, big);
    check((await Deno.readFile(path)).every((b, i) => b === big[i]), "big content");
    check((await Deno.stat(path)).size === big.length, "big size");
    // Replace with something shorter: no tail of the old file may survive.
    await writeFileAtomic(path, "short ünïcode");
    check((await Deno.readTextFile(path)) === "short ünïcode", "short content");
    check((await listDir(dir)).join() === "model.safetensors", `dir has ${await listDir(dir)}`);
  });
});

Deno.test("writeFileAtomic keeps an existing target's permission bits", async () => {
  if (Deno.build.os === "windows") return;
  await withTempDir(async (dir) => {
    const path = `${dir}/secret.json`;
    await Deno.writeTextFile(path, "old");
    await Deno.chmod(path, 0o640);
    await writeFileAtomic(path, "new");
    const st = await Deno.stat(path);
    check((st.mode! & 0o777) === 0o640, `mode ${(st.mode! & 0o777).toString(8)}`);
    check((await Deno.readTextFile(path)) === "new", "content");
  });
});

Deno.test("writeFileAtomic into a missing directory throws and leaves nothing", async () => {
  await withTempDir(async (dir) => {
    const e = await rejects(
      () => writeFileAtomic(`${dir}/missing/sub/x.bin`, new Uint8Array(10)),
      "missing dir",
    );
    check(e instanceof WriteError && e.cause instanceof Deno.errors.NotFound, `got ${e}`);
    check(String(e).includes(`cannot write '${dir}/missing/sub/x.bin'`), `the message names the file: ${e}`);
    check((await listDir(dir)).length === 0, `dir has ${await listDir(dir)}`);
  });
});

Deno.test("writeFileAtomic over a directory fails after writing the temp file, and removes it", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/target`);
    await Deno.writeTextFile(`${dir}/target/keep.txt`, "keep");
    await rejects(() => writeFileAtomic(`${dir}/target`, "data"), "rename over a directory");
    check((await listDir(dir)).join() === "target", `dir has ${await listDir(dir)}`);
    check((await Deno.readTextFile(`${dir}/target/keep.txt`)) === "keep", "directory untouched");
  });
});

Deno.test("concurrent writeFileAtomic calls leave exactly one whole version", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/ckpt.bin`;
    const payloads = Array.from({ length: 16 }, (_, i) => new Uint8Array(100_000 + 1000 * i).fill(i + 1));
    await Promise.all(payloads.map((p) => writeFileAtomic(path, p)));
    const got = await Deno.readFile(path);
    const which = got[0] - 1;
    check(which >= 0 && which < 16, `first byte ${got[0]}`);
    check(got.length === payloads[which].length && got.every((b) => b === which + 1), "a torn file");
    check((await listDir(dir)).join() === "ckpt.bin", `dir has ${await listDir(dir)}`);
  });
});

// ---- JSON Lines logs ----

Deno.test("JsonlLog writes one flushed line per record and readJsonl reads them back", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/run.jsonl`;
    const log = await JsonlLog.open(path);
    const recs = [
      { step: 0, loss: 4.17, lr: 1e-3 },
      { step: 1, loss: 3.9, note: 'line\nbreak "quoted" \u2028 ünï' },
      { step: 2, loss: NaN, nested: { a: [1, 2] } },
    ];
    for (const [i, r] of recs.entries()) {
      await log.write(r);
      // Flushed: visible to a reader before close.
      const text = await Deno.readTextFile(path);
      check(
        text.split("\n").length === i + 2 && text.endsWith("\n"),
        `after write ${i}: ${JSON.stringify(text)}`,
      );
    }
    log.close();
    const back = await readJsonl(path);
    check(back.length === 3, `read ${back.length}`);
    check(JSON.stringify(back) === JSON.stringify(recs), JSON.stringify(back));
    check(back[2].loss === null, "NaN is written as null");
  });
});

Deno.test("JsonlLog serialises unawaited writes and finishes them on close", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/run.jsonl`;
    const log = await JsonlLog.open(path);
    const writes = Array.from({ length: 200 }, (_, i) => log.write({ i, pad: "x".repeat(i * 37 % 500) }));
    log.close(); // before any has finished
    await Promise.all(writes);
    const e = await rejects(() => log.write({ late: true }), "write after close");
    check(String(e).includes("write after close"), String(e));
    const back = await readJsonl(path);
    check(back.length === 200 && back.every((r, i) => r.i === i), `order: ${back.map((r) => r.i).join()}`);
  });
});

Deno.test("JsonlLog refuses unserialisable records without writing", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/run.jsonl`;
    const log = await JsonlLog.open(path);
    await log.write({ ok: 1 });
    await rejects(() => log.write({ big: 1n }), "BigInt");
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    await rejects(() => log.write(cyc), "cycle");
    await rejects(() => log.write([1, 2] as unknown as Record<string, unknown>), "array");
    await log.write({ ok: 2 });
    log.close();
    check((await Deno.readTextFile(path)) === '{"ok":1}\n{"ok":2}\n', await Deno.readTextFile(path));
  });
});

Deno.test("readJsonl skips a truncated last line; append mode cuts it off first", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/run.jsonl`;
    // A crash mid-line, cut inside a multi-byte character.
    const partial = new TextEncoder().encode('{"step":3,"note":"ü').slice(0, -1);
    const whole = new TextEncoder().encode('{"step":1}\n\n{"step":2}\n');
    const bytes = new Uint8Array(whole.length + partial.length);
    bytes.set(whole);
    bytes.set(partial, whole.length);
    await Deno.writeFile(path, bytes);
    check((await readJsonl(path)).map((r) => r.step).join() === "1,2", "truncated line skipped");
    // A final object without its newline (hand-written) is kept.
    await Deno.writeTextFile(`${dir}/hand.jsonl`, '{"a":1}\n{"a":2}');
    check((await readJsonl(`${dir}/hand.jsonl`)).length === 2, "complete unterminated tail kept");
    // Appending after the crash: the partial line is dropped, the new record gets its own line.
    const log = await JsonlLog.open(path, { append: true });
    await log.write({ step: 3 });
    log.close();
    check(
      (await Deno.readTextFile(path)) === '{"step":1}\n\n{"step":2}\n{"step":3}\n',
      await Deno.readTextFile(path),
    );
    // A file that is nothing but a partial line.
    await Deno.writeTextFile(`${dir}/only.jsonl`, '{"x":');
    const l2 = await JsonlLog.open(`${dir}/only.jsonl`, { append: true });
    await l2.write({ x: 1 });
    l2.close();
    check((await Deno.readTextFile(`${dir}/only.jsonl`)) === '{"x":1}\n', "only partial line");
    // Appending to a missing file creates it; opening without append truncates.
    const l3 = await JsonlLog.open(`${dir}/new.jsonl`, { append: true });
    await l3.write({ n: 1 });
    l3.close();
    const l4 = await JsonlLog.open(`${dir}/new.jsonl`);
    await l4.write({ n: 2 });
    l4.close();
    check((await Deno.readTextFile(`${dir}/new.jsonl`)) === '{"n":2}\n', "truncated on plain open");
  });
});

Deno.test("readJsonl names the line of a corrupt record in the middle", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.jsonl`;
    await Deno.writeTextFile(path, '{"a":1}\n{"a":\n{"a":3}\n');
    const e = await rejects(() => readJsonl(path), "corrupt middle line");
    check(String(e).includes("bad.jsonl:2: not JSON"), String(e));
    await Deno.writeTextFile(path, '{"a":1}\n[1,2]\n');
    check(
      String(await rejects(() => readJsonl(path), "array")).includes(":2: not a JSON object"),
      "array line",
    );
  });
});

// ---- SVG plots ----

/** A tiny XML well-formedness check: balanced tags, quoted attributes, known entities only. */
function checkXml(svg: string): { tags: { name: string; attrs: Record<string, string>; text: string }[] } {
  const stack: { name: string; idx: number }[] = [];
  const tags: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  let m: RegExpExecArray | null;
  let roots = 0;
  while ((m = re.exec(svg)) !== null) {
    if (m[6]) throw new Error(`stray '<' at ${m.index}: ${svg.slice(m.index, m.index + 40)}`);
    if (m[5] !== undefined) {
      const text = m[5];
      check(!/&(?!(amp|lt|gt|quot|#39);)/.test(text), `bad entity in text ${JSON.stringify(text)}`);
      check(text.trim() === "" || stack.length > 0, `text outside the root: ${JSON.stringify(text)}`);
      if (stack.length) tags[stack[stack.length - 1].idx].text += text;
      continue;
    }
    const [, close, name, attrText, selfClose] = m;
    if (close) {
      const open = stack.pop();
      check(open?.name === name, `</${name}> closes <${open?.name}>`);
      continue;
    }
    if (stack.length === 0) roots++;
    const attrs: Record<string, string> = {};
    for (const a of attrText.matchAll(/([\w:-]+)="([^"]*)"/g)) {
      check(!(a[1] in attrs), `duplicate attribute ${a[1]} on <${name}>`);
      check(!/&(?!(amp|lt|gt|quot|#39);)/.test(a[2]), `bad entity in ${a[1]}="${a[2]}"`);
      attrs[a[1]] = a[2];
    }
    tags.push({ name, attrs, text: "" });
    if (!selfClose) stack.push({ name, idx: tags.length - 1 });
  }
  check(stack.length === 0, `unclosed: ${stack.map((s) => s.name).join(" ")}`);
  check(roots === 1 && tags[0].name === "svg", "one <svg> root");
  return { tags };
}

const NUMERIC = ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height"];

/** Well-formed, all coordinates finite numbers inside the canvas, every series name present. */
function checkPlot(opts: LinePlotOptions): ReturnType<typeof checkXml> {
  const svg = linePlotSvg(opts);
  const doc = checkXml(svg);
  const W = Math.max(200, opts.width ?? 760), H = Math.max(150, opts.height ?? 440); // the minimum canvas
  for (const t of doc.tags) {
    for (const k of NUMERIC) {
      if (!(k in t.attrs)) continue;
      const v = Number(t.attrs[k]);
      check(Number.isFinite(v) && v >= -1 && v <= Math.max(W, H) + 1, `<${t.name} ${k}="${t.attrs[k]}">`);
    }
    if (t.attrs.points !== undefined) {
      for (const p of t.attrs.points.split(" ")) {
        const [x, y] = p.split(",").map(Number);
        check(x >= 0 && x <= W && y >= 0 && y <= H, `point ${p} off the canvas`);
      }
    }
  }
  const markup = svg.replace(/>[^<]*</g, "><").replace(/aria-label="[^"]*"/g, ""); // minus the text
  check(!/NaN|Infinity/.test(markup), "NaN or Infinity in markup");
  const texts = doc.tags.filter((t) => t.name === "text").map((t) => t.text);
  for (const s of opts.series) {
    const shown = s.name.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    if (s.name) check(texts.some((t) => t === shown), `legend lacks ${s.name}`);
  }
  return doc;
}

function polylines(doc: ReturnType<typeof checkXml>): [number, number][][] {
  return doc.tags.filter((t) => t.name === "polyline").map((t) =>
    t.attrs.points.split(" ").map((p) => p.split(",").map(Number) as [number, number])
  );
}

function yTickValues(doc: ReturnType<typeof checkXml>): number[] {
  return doc.tags.filter((t) =>
    t.name === "text" && t.attrs["text-anchor"] === "end" && !t.attrs["font-size"]
  )
    .map((t) => Number(t.text));
}

Deno.test("linePlotSvg: a loss plot is well-formed with nice ticks, legend, reference line", () => {
  const train: [number, number][] = [], val: [number, number][] = [];
  for (let s = 0; s <= 2000; s += 10) {
    train.push([s, 1.3 + 2.9 * Math.exp(-s / 400) + 0.03 * Math.sin(s)]);
    if (s % 250 === 0) val.push([s, 1.5 + 2.7 * Math.exp(-s / 400)]);
  }
  train[50] = [500, NaN];
  train[60] = [600, Infinity];
  val.push([2100, -Infinity]);
  const doc = checkPlot({
    title: "loss <train & val>",
    xLabel: "step",
    yLabel: "loss",
    series: [{ name: "train", points: train }, { name: "val", points: val, dashed: true }],
    hlines: [{ y: 1.4697, label: "best achievable loss" }],
  });
  check(
    doc.tags.some((t) => t.name === "text" && t.text === "loss &lt;train &amp; val&gt;"),
    "escaped title",
  );
  check(doc.tags.some((t) => t.text.startsWith("best achievable loss")), "hline label");
  // NaN and Infinity break the training line into three runs; val stays one dashed line.
  const lines = doc.tags.filter((t) => t.name === "polyline");
  check(lines.length === 4, `${lines.length} polylines`);
  check(lines.filter((t) => t.attrs["stroke-dasharray"]).length === 1, "one dashed line");
  check(new Set(lines.map((t) => t.attrs.stroke)).size === 2, "two colours");
  const ticks = yTickValues(doc);
  check(ticks.length >= 4 && ticks.every(Number.isFinite), `y ticks ${ticks}`);
  const step = ticks[1] - ticks[0];
  const mant = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
  check([1, 2, 5].some((m) => Math.abs(mant - m) < 1e-6), `tick step ${step}`);
  check(ticks.every((t, i) => i === 0 || Math.abs(t - ticks[i - 1] - step) < 1e-9), `uneven ticks ${ticks}`);
  check(ticks[0] <= 1.4697 && ticks[ticks.length - 1] >= 4.2, `ticks ${ticks} do not cover the data`);
});

Deno.test("linePlotSvg: positions are consistent between series, reference lines and scales", () => {
  for (const logY of [false, true]) {
    // y = 1 and y = 100 drawn by the series; the hline at the midpoint in data (linear) or log space.
    const mid = logY ? 10 : 50.5;
    const doc = checkPlot({
      title: "",
      xLabel: "x",
      yLabel: "y",
      logY,
      series: [{ name: "up", points: [[0, 1], [4, 100]] }],
      hlines: [{ y: mid, label: "mid" }],
    });
    const [[p0, p1]] = polylines(doc);
    check(p1[0] > p0[0] && p1[1] < p0[1], `increasing series drawn ${p0} -> ${p1}`);
    const hl = doc.tags.find((t) => t.name === "line" && t.attrs["stroke-dasharray"] === "2 3")!;
    const hy = Number(hl.attrs.y1);
    check(
      Math.abs(hy - (p0[1] + p1[1]) / 2) <= 0.1,
      `logY=${logY}: hline at ${hy}, series ${p0[1]}..${p1[1]}`,
    );
  }
});

Deno.test("linePlotSvg survives empty, single-point, constant, non-finite and non-positive data", () => {
  const cases: LinePlotOptions[] = [
    { title: "no series", xLabel: "x", yLabel: "y", series: [] },
    { title: "empty series", xLabel: "x", yLabel: "y", series: [{ name: "a", points: [] }] },
    {
      title: "all NaN",
      xLabel: "x",
      yLabel: "y",
      series: [{ name: "a", points: [[NaN, 1], [1, NaN], [2, Infinity]] }],
    },
    { title: "one point", xLabel: "x", yLabel: "y", series: [{ name: "a", points: [[3, 7]] }] },
    {
      title: "constant",
      xLabel: "x",
      yLabel: "y",
      series: [{ name: "a", points: [[0, 2], [5, 2], [9, 2]] }],
    },
    { title: "zero", xLabel: "x", yLabel: "y", series: [{ name: "a", points: [[1, 0], [1, 0]] }] },
    {
      title: "log, negatives",
      xLabel: "x",
      yLabel: "y",
      logY: true,
      series: [{ name: "a", points: [[0, -1], [1, 0]] }],
    },
    {
      title: "log, wide",
      xLabel: "x",
      yLabel: "y",
      logY: true,
      series: [{ name: "a", points: [[0, 1e-30], [1, 1e30]] }],
      hlines: [{ y: -1, label: "skipped" }, { y: NaN, label: "skipped too" }],
    },
    { title: "only hline", xLabel: "x", yLabel: "y", series: [], hlines: [{ y: 2, label: "h" }] },
    {
      title: "tiny",
      xLabel: "x",
      yLabel: "y",
      series: [{ name: "a", points: [[0, 1e-7], [1, 1.0000001e-7]] }],
    },
    {
      title: "huge",
      xLabel: "x",
      yLabel: "y",
      series: [{ name: "a", points: [[-1e12, -3e9], [1e12, 8e15]] }],
    },
    {
      title: "small canvas",
      xLabel: "x",
      yLabel: "y",
      width: 10,
      height: 10,
      series: [{ name: "a", points: [[0, 1]] }],
    },
    {
      title: "many",
      xLabel: "x",
      yLabel: "y",
      series: Array.from({ length: 25 }, (_, i) => ({ name: `s${i} <${i}>`, points: [[0, i], [1, i + 1]] })),
    },
  ];
  for (const c of cases) {
    const svg = linePlotSvg(c);
    const doc = checkPlot(c);
    const dots = doc.tags.filter((t) => t.name === "circle").length;
    if (c.title === "one point") check(dots === 1, "single point drawn as a dot");
    if (c.title === "no series" || c.title === "all NaN") {
      check(svg.includes(">no data<"), `${c.title}: no data`);
    }
    if (c.title === "constant") check(polylines(doc).length === 1, "constant line drawn");
    if (c.title === "log, negatives") {
      check(polylines(doc).length === 0 && dots === 0, "non-positive skipped on log");
    }
    if (c.title === "log, wide") check(!svg.includes("skipped"), "non-finite hlines dropped");
    if (c.title === "many") {
      const styles = new Set(
        doc.tags.filter((t) => t.name === "polyline").map((t) =>
          t.attrs.stroke + t.attrs["stroke-dasharray"]
        ),
      );
      check(styles.size === 25, `${styles.size} distinct styles for 25 series`);
    }
  }
});

Deno.test("legend names fit whole at every length (no floating-point truncation)", () => {
  for (let n = 1; n <= 40; n++) {
    const name = "abcdefghijklmnopqrstuvwxyz0123456789ABCD".slice(0, n);
    const svg = linePlotSvg({
      title: "t",
      xLabel: "x",
      yLabel: "y",
      series: [{ name, points: [[0, 1], [1, 2]] }],
    });
    if (n <= 30 && !svg.includes(`>${name}<`)) throw new Error(`legend name of ${n} characters was cut`);
  }
});
