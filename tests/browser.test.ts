/**
 * The playground page in a real browser: builds web/ with esbuild, serves it on 127.0.0.1, and drives
 * Debian's Chromium (/usr/bin/chromium, never a downloaded browser) with playwright-core. Chromium's
 * `--enable-unsafe-webgpu` gives the headless page a software WebGPU adapter (SwiftShader), so the engine
 * runs in the page as it would on a GPU.
 *
 * The test walks the page as a person would:
 * - without WebGPU (the API removed) the page says what to do in browser terms, and stays still;
 * - the adapter is named as a software renderer; the small preset warns of its long run;
 * - errors are caught before any kernel compiles (a text of 11 characters, a prompt character the model
 *   has not seen), shown beside their control, and the page recovers;
 * - a short training (the tiny preset, 24 steps): the loss falls, the learning rate changed mid-run is
 *   used from the next step, every evaluation writes a sample with the prompt set apart, its characters
 *   shaded by probability with a top 5 on hover; the attention map, the learning-rate chart and the
 *   chart readouts are there; the exposure panel scores the model against the language's true law;
 * - every enabled control is reached by Tab; at 390 px nothing overflows and the charts are drawn at
 *   their box's width;
 * - a second run is stopped between steps; a bad file is refused beside the Load control; the downloaded
 *   checkpoint loads back (same exposure figures) and downloads again byte-identical;
 * - the engine bundle (tforce.js) loads in its example page.
 * Screenshots (error.png, train.png, mobile.png, loaded.png) and the checkpoint stay in
 * /tmp/tforce-browser/.
 *
 * @module
 */
import { serveFolder } from "../web/serve.ts";
import assert from "node:assert/strict";
// Not in deno.json's imports, which every `deno task` installs: only this test uses playwright-core (the
// test task locks it in deno.dev.lock).
// deno-lint-ignore no-import-prefix
import type { Browser, BrowserType, Page } from "npm:playwright-core@1.64.1";
import { buildWeb } from "../web/build.ts";
import { decodeModel } from "../src/model/checkpoint.ts";
import { paramLayout } from "../src/model/params.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];
/** Where the screenshots and the downloaded checkpoint are kept for a person to look at. */
const ARTIFACTS = "/tmp/tforce-browser";
const STEPS = 16;
const EVAL = 8;

/** Serves the files of `dir` (flat) on 127.0.0.1 at a free port: `deno task serve`'s server. */
function serve(dir: string): Deno.HttpServer<Deno.NetAddr> {
  return serveFolder(dir, { port: 0 });
}

/**
 * Loads playwright-core. Its bundled `is-wsl` probes /proc/sys/fs/binfmt_misc/WSLInterop when the module
 * loads, a path Deno opens only under --allow-all; the package's own `__IS_WSL_TEST__` switch defers that
 * probe to the code that opens files in desktop apps, which this test never runs (launching a browser
 * does not use it). So the variable is set for the import only.
 */
async function loadChromium(): Promise<BrowserType> {
  Deno.env.set("__IS_WSL_TEST__", "1");
  try {
    // deno-lint-ignore no-import-prefix
    return (await import("npm:playwright-core@1.64.1")).chromium;
  } finally {
    Deno.env.delete("__IS_WSL_TEST__");
  }
}

async function requireChromium(): Promise<void> {
  try {
    await Deno.stat(CHROMIUM);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error(
      `browser test: Chromium is not installed at ${CHROMIUM}. Install Debian's package ` +
        "(apt-get install -y chromium); the test drives that binary and never downloads a browser.",
    );
  }
}

/** Waits until the page's data-state is one of `states`; a page in "error" fails with its message. */
async function waitForState(page: Page, states: string[], timeout: number): Promise<void> {
  const wanted = JSON.stringify([...states, "error"]);
  await page.waitForFunction(`${wanted}.includes(document.body.dataset.state)`, null, { timeout });
  const state = await page.getAttribute("body", "data-state");
  if (state === "error" && !states.includes("error")) {
    const slot = await page.getAttribute("body", "data-error-slot");
    throw new Error(`the page reported an error beside ${slot}: ${await page.textContent(`#${slot}-error`)}`);
  }
}

/** Waits until the run has logged step `step`; a page in "error" fails with its message. */
async function waitForStep(page: Page, step: number, timeout: number): Promise<void> {
  await page.waitForFunction(
    `Number(document.body.dataset.step) >= ${step} || document.body.dataset.state === "error"`,
    null,
    { timeout },
  );
  await waitForState(page, ["compiling", "training", "stopping", "sampling", "measuring", "done"], 1000);
}

async function num(page: Page, attr: string): Promise<number> {
  const v = await page.getAttribute("body", `data-${attr}`);
  assert(v !== null, `body has no data-${attr}`);
  return Number(v);
}

/** Expects the page to show an error beside `slot` (and nowhere else) and to be usable again. */
async function expectError(page: Page, slot: string, pattern: RegExp): Promise<void> {
  await waitForState(page, ["error"], 10_000);
  assert.equal(await page.getAttribute("body", "data-error-slot"), slot);
  const msg = (await page.textContent(`#${slot}-error`)) ?? "";
  assert.match(msg, pattern);
  assert(await page.isVisible(`#${slot}-error`), `#${slot}-error is hidden`);
  assert.equal(await page.isDisabled("#train"), false, "Train stays disabled after an error");
  assert.match((await page.textContent("#status")) ?? "", /the message is beside/);
  console.log(`  error beside ${slot}: ${msg}`);
}

/** The exposure panel's numbers (data-exposure-*), checked finite, the chart drawn. */
async function exposure(page: Page): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  for (const k of ["tf", "fr", "gap", "kl", "oracle-gold", "oracle-own"]) {
    r[k] = await num(page, `exposure-${k}`);
    assert(Number.isFinite(r[k]), `exposure ${k} is not finite: ${r[k]}`);
  }
  assert.deepEqual(await num(page, "exposure-windows"), 8);
  assert(Math.abs(r.gap - (r.fr - r.tf)) < 1e-9, `gap ${r.gap} is not fr - tf`);
  assert(r.kl >= 0 && r["oracle-gold"] >= 0 && r["oracle-own"] >= 0, "a KL below 0");
  assert(await page.locator("#exposure-chart svg polyline").count() >= 2, "no exposure curves");
  assert(
    await page.locator("#exposure-chart svg rect.region").count() === 1,
    "the true prefix is not shaded",
  );
  console.log(`  ${await page.textContent("#exposure-status")}`);
  return r;
}

async function downloadCheckpoint(page: Page, to: string): Promise<Uint8Array> {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  await download.saveAs(to);
  return await Deno.readFile(to);
}

/** Sets a range input's value as a person dragging it would (an input event). */
async function slide(page: Page, selector: string, value: number): Promise<void> {
  await page.evaluate(
    `{ const e = document.querySelector(${JSON.stringify(selector)}); e.value = "${value}"; ` +
      `e.dispatchEvent(new Event("input", { bubbles: true })); }`,
  );
}

/** Without the WebGPU API the page explains, in browser terms, where WebGPU is, and offers no Train. */
async function checkNoWebGpu(browser: Browser, url: string): Promise<void> {
  const page = await browser.newPage();
  await page.addInitScript("delete Navigator.prototype.gpu");
  await page.goto(url);
  await waitForState(page, ["no-webgpu"], 15_000);
  const note = (await page.textContent("#adapter-note")) ?? "";
  assert.match(note, /Chrome/);
  assert.match(note, /chrome:\/\/flags/);
  assert.doesNotMatch(note, /apt-get/);
  assert(await page.isDisabled("#train"), "Train is enabled without WebGPU");
  console.log(`  without WebGPU: ${note.slice(0, 90)}…`);
  await page.close();
}

/** The engine alone: its example page imports tforce.js, which exposes the public API. */
async function checkExample(browser: Browser, origin: string, errors: string[]): Promise<void> {
  const example = await browser.newPage();
  example.on("pageerror", (e) => errors.push(`example page error: ${e.message}`));
  await example.goto(`${origin}/example.html`);
  const exported = await example.evaluate(
    `import("./tforce.js").then((m) => [typeof m.train, typeof m.Generator])`,
  );
  assert.deepEqual(exported, ["function", "function"]);
  await example.close();
}

/** Errors caught before compiling (short text, unseen prompt character), each beside its control. */
async function checkErrors(page: Page): Promise<void> {
  await page.fill("#text", "hello world");
  await page.click("#train");
  await expectError(page, "text", /11 characters/);
  await page.screenshot({ path: `${ARTIFACTS}/error.png` });
  await page.click("#reset-text");
  assert(await page.isHidden("#text-error"), "the text error stays after the text was fixed");
  await page.fill("#prompt", "Q#");
  await page.click("#train");
  await expectError(page, "prompt", /"#"/);
}

/** Every sample: the prompt set apart, its generated characters shaded, a top 5 on hover. */
async function checkSamples(page: Page, prompt: string): Promise<void> {
  const n = await page.locator("#samples li").count();
  assert.equal(n, STEPS / EVAL, `one sample per evaluation (${STEPS / EVAL}), got ${n}`);
  assert.equal(await num(page, "samples"), n);
  for (let i = 0; i < n; i++) {
    const li = page.locator("#samples li").nth(i);
    assert.equal(await li.locator(".prompt").textContent(), prompt);
    assert(await li.locator(".tok").count() > 0, `sample ${i} is not shaded`);
  }
  assert.match(
    (await page.locator("#samples li .meta").first().textContent()) ?? "",
    new RegExp(`step ${STEPS}`),
  );
  await page.locator("#samples li").first().locator(".tok").nth(3).hover();
  assert.equal(await page.locator("#char-details .top5 li").count(), 5, "no top 5 on hover");
  console.log(`  sample: ${(await page.locator("#samples li").first().textContent())?.replace(/\s+/g, " ")}`);
  console.log(`  hover: ${(await page.textContent("#char-details p"))?.trim()}`);
}

/** The attention map, the learning-rate chart and the chart readouts. */
async function checkViews(page: Page): Promise<void> {
  const cells = await num(page, "attention-cells");
  assert(cells > 10, `attention map of ${cells} cells`);
  await page.selectOption("#attn-head", "1");
  const map = page.locator("#attention svg"), box = (await map.boundingBox())!;
  await map.hover({ position: { x: box.width * 0.6, y: box.height * 0.8 } });
  assert.match((await page.textContent("#attention-readout")) ?? "", /% of its attention/);
  assert(await page.locator("#lr-chart svg polyline").count() >= 2, "no learning-rate curves");
  const chart = page.locator("#chart svg"), loss = (await chart.boundingBox())!;
  await chart.hover({ position: { x: loss.width * 0.7, y: loss.height / 2 } });
  assert.match((await page.textContent("#chart .readout")) ?? "", /train \d/);
  console.log(`  loss chart readout: ${await page.textContent("#chart .readout")}`);
}

/** Tab reaches every enabled control of the page, the hidden file inputs included. */
async function checkKeyboard(page: Page): Promise<void> {
  const controls = await page.evaluate(
    `[...document.querySelectorAll("a[href], button:not([disabled]), input:not([disabled]), ` +
      `select:not([disabled]), textarea, [tabindex='0']")]` +
      ".map((e, i) => e.dataset.tab = e.id || `${e.tagName.toLowerCase()}#${i}`)",
  ) as string[];
  await page.evaluate("document.activeElement?.blur()");
  const reached = new Set<string>();
  for (let i = 0; i < controls.length + 5; i++) {
    await page.keyboard.press("Tab");
    const id = await page.evaluate("document.activeElement?.dataset.tab") as string | undefined;
    if (id) reached.add(id);
  }
  const missed = controls.filter((c) => !reached.has(c));
  assert.deepEqual(missed, [], `Tab does not reach ${missed.join(", ")}`);
  for (const id of ["file", "load", "lr", "temperature", "attn-layer"]) {
    assert(reached.has(id), `Tab misses #${id}`);
  }
  console.log(`  Tab reaches all ${controls.length} controls`);
}

/** At 390 px: no sideways scrolling, charts drawn at their box's width (text at its size), a screenshot. */
async function checkPhone(page: Page): Promise<void> {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(
    `[...document.querySelectorAll(".chart svg")].every((svg) => ` +
      `Math.abs(svg.getBoundingClientRect().width - Number(svg.getAttribute("viewBox").split(" ")[2])) < 2)`,
    null,
    { timeout: 5000 },
  );
  const overflow = await page.evaluate("document.documentElement.scrollWidth") as number;
  assert(overflow <= 390, `the page is ${overflow} px wide at 390`);
  await page.screenshot({ path: `${ARTIFACTS}/mobile.png`, fullPage: true });
  await page.setViewportSize({ width: 1100, height: 900 });
}

/** A second run stopped after a few steps: the page settles and keeps the stopped model. */
async function checkStop(page: Page): Promise<void> {
  await page.click("#train");
  await waitForStep(page, 2, 60_000);
  await page.click("#stop");
  await waitForState(page, ["done"], 60_000);
  const stopped = await num(page, "stopped");
  assert(stopped >= 2 && stopped < STEPS, `stopped at step ${stopped}`);
  console.log(`  ${await page.textContent("#status")}`);
}

Deno.test("browser: the playground trains, explains, recovers from errors, saves and loads", async () => {
  await requireChromium();
  const chromium = await loadChromium();
  const t0 = performance.now();
  const lap = (what: string) => console.log(`  ${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const dist = await Deno.makeTempDir({ prefix: "tforce-web-" });
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  let browser: Browser | null = null;
  try {
    await buildWeb({ outdir: dist });
    lap("built");
    server = serve(dist);
    const origin = `http://127.0.0.1:${server.addr.port}`;
    const url = `${origin}/?size=tiny&steps=${STEPS}&eval=${EVAL}&chars=48`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });

    const page = await browser.newPage({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console error: ${m.text()}`);
    });
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(url);
    await waitForState(page, ["ready"], 30_000);
    const adapter = (await page.textContent("#adapter")) ?? "";
    console.log(`  ${adapter}; ${await page.textContent("#adapter-note")}`);
    assert.match(adapter, /software/);
    // The precision choice follows the adapter: float16 can be picked only with shader-f16.
    const f16 = await page.getAttribute("body", "data-f16");
    assert(f16 === "true" || f16 === "false", `data-f16 is ${f16}`);
    assert.equal(
      await page.locator('#dtype option[value="float16"]').getAttribute("disabled") !== null,
      f16 === "false",
    );
    await page.selectOption("#size", "small");
    assert.match((await page.textContent("#estimate")) ?? "", /min.*long wait/);
    console.log(`  small: ${await page.textContent("#estimate")}`);
    await page.selectOption("#size", "tiny");
    await page.fill("#steps", String(STEPS));
    lap("page ready");

    await checkErrors(page);
    lap("errors and recovery");

    const prompt = ((await page.inputValue("#text")).split(" ")[0]) + " ";
    await page.fill("#prompt", prompt);
    await page.click("#train");
    // While the kernels compile: a page without WebGPU, and the engine bundle's example page.
    await checkNoWebGpu(browser, url);
    await checkExample(browser, origin, errors);
    await waitForStep(page, EVAL, 120_000);
    const peak = Number(await page.textContent("#lr-value"));
    await slide(page, "#lr", Number(await page.inputValue("#lr")) + 2); // a higher peak from the next step
    const newPeak = Number(await page.textContent("#lr-value"));
    assert(newPeak > peak, `the learning-rate slider did not move: ${peak} -> ${newPeak}`);
    await waitForState(page, ["done"], 120_000);
    lap(`trained ${STEPS} steps`);
    console.log(`  ${await page.textContent("#status")}; ${await num(page, "kernels")} kernels compiled`);
    await page.screenshot({ path: `${ARTIFACTS}/train.png`, fullPage: true });

    const first = await num(page, "first-loss"), last = await num(page, "last-loss");
    const val = await num(page, "val-loss"), step = await num(page, "step");
    console.log(`  train loss ${first.toFixed(3)} -> ${last.toFixed(3)}, val loss ${val.toFixed(3)}`);
    assert.deepEqual(step, STEPS);
    assert(Number.isFinite(first) && Number.isFinite(last) && Number.isFinite(val), "losses must be finite");
    assert(last < first - 0.3, `training loss did not fall enough: ${first} -> ${last}`);
    const ratio = (await num(page, "lr")) / (await num(page, "lr-scheduled"));
    assert(Math.abs(ratio - newPeak / peak) < 1e-6, `the last step's rate is ${ratio} x its schedule's`);
    await checkSamples(page, prompt);
    await checkViews(page);
    const trained = await exposure(page);
    assert(trained.fr >= trained.tf, `free-running loss ${trained.fr} < teacher-forced ${trained.tf}`);
    await checkKeyboard(page);
    await checkPhone(page);
    lap("views, keyboard, 390 px");

    // Download: a nanoGPT-named safetensors checkpoint of the tiny model, readable in Deno.
    const bytes = await downloadCheckpoint(page, `${ARTIFACTS}/model.safetensors`);
    const ck = decodeModel(bytes, "downloaded checkpoint");
    assert.deepEqual([ck.config.n_layer, ck.config.n_head, ck.config.n_embd, ck.config.block_size], [
      1,
      2,
      32,
      32,
    ]);
    assert.deepEqual(ck.metadata.step, String(STEPS));
    assert.deepEqual(ck.tokenizer.type, "char");
    for (const [name, w] of ck.weights) assert(w.every(Number.isFinite), `${name} has non-finite values`);

    await checkStop(page);
    lap("stopped a second run");

    // A file that is not a checkpoint is refused beside Load; the real one loads back, measures the same
    // and downloads again byte-identical.
    await Deno.writeTextFile(`${ARTIFACTS}/bogus.safetensors`, "not a checkpoint");
    await page.setInputFiles("#load", `${ARTIFACTS}/bogus.safetensors`);
    await expectError(page, "checkpoint", /bogus\.safetensors/);
    const before = await page.locator("#samples li").count();
    await page.setInputFiles("#load", `${ARTIFACTS}/model.safetensors`);
    await waitForState(page, ["done"], 60_000);
    assert.deepEqual(await num(page, "samples"), before + 1);
    assert((await page.getAttribute("body", "data-model"))?.startsWith("loaded"), "the model was not loaded");
    const loaded = await exposure(page);
    for (const k of ["tf", "fr", "kl", "oracle-gold", "oracle-own"]) {
      assert(Math.abs(loaded[k] - trained[k]) < 1e-4, `loaded model's exposure ${k} differs: ${loaded[k]}`);
    }
    const again = await downloadCheckpoint(page, `${ARTIFACTS}/model.reloaded.safetensors`);
    assert(again.length === bytes.length && again.every((b, i) => b === bytes[i]), "re-download differs");
    await page.screenshot({ path: `${ARTIFACTS}/loaded.png`, fullPage: true });
    lap("loaded back");

    // A page whose bindings hold 16 KiB spreads these weights over several buffers, as GPT-2 small's are on
    // a 128 MiB binding: the checkpoint loads, samples, measures the same and downloads the same bytes.
    const BINDING = 16384;
    const buffers = paramLayout(ck.config, BINDING).layout.buffers.length;
    assert(buffers > 1, `the weights fit one ${BINDING}-byte binding`);
    const spread = await browser.newPage({ acceptDownloads: true });
    spread.on("pageerror", (e) => errors.push(`page error (binding ${BINDING}): ${e.message}`));
    await spread.goto(`${url}&binding=${BINDING}`);
    await waitForState(spread, ["ready"], 30_000);
    await spread.setInputFiles("#load", `${ARTIFACTS}/model.safetensors`);
    await waitForState(spread, ["done"], 60_000);
    assert.equal(await num(spread, "samples"), 1);
    const spreadExposure = await exposure(spread);
    for (const k of ["tf", "fr", "kl", "oracle-gold", "oracle-own"]) {
      const d = Math.abs(spreadExposure[k] - trained[k]);
      assert(d < 1e-4, `exposure ${k} over ${buffers} buffers differs: ${spreadExposure[k]}`);
    }
    const fromSpread = await downloadCheckpoint(spread, `${ARTIFACTS}/model.spread.safetensors`);
    assert(
      fromSpread.length === bytes.length && fromSpread.every((b, i) => b === bytes[i]),
      "download differs",
    );
    await spread.close();
    lap(`loaded over ${buffers} buffers`);
    assert.deepEqual(errors, [], "the page logged errors");
    console.log(
      `  screenshots: ${
        ["error", "train", "mobile", "loaded"].map((n) => `${ARTIFACTS}/${n}.png`).join(", ")
      }`,
    );
  } finally {
    await browser?.close();
    await server?.shutdown();
    await Deno.remove(dist, { recursive: true });
  }
});
