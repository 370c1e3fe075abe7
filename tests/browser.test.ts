/**
 * The demo page in a real browser: builds web/ with esbuild, serves it on 127.0.0.1, and drives
 * Debian's Chromium (/usr/bin/chromium, never a downloaded browser) with playwright-core. Chromium's
 * `--enable-unsafe-webgpu` gives the headless page a software WebGPU adapter, so the engine runs in
 * the page as it would on a GPU. The test trains the tiny preset for a few steps, checks that the loss
 * fell, that samples appeared and that the page logged no error, downloads the checkpoint, checks it in
 * Deno, loads it back into the page and downloads it again (byte-identical). After training and after
 * loading, the page's "Teacher forcing vs free running" panel must show finite exposure numbers with
 * the free-running loss at least the teacher-forced one, the same for both (same weights, same
 * validation windows, greedy continuation). Artifacts: a screenshot
 * after training (train.png), one after loading the checkpoint back (loaded.png) and the checkpoint
 * (model.safetensors), in /tmp/tforce-browser/.
 *
 * @module
 */
import assert from "node:assert/strict";
// Not in deno.json's imports, which every `deno task` installs: only this test uses playwright-core (the
// test task locks it in deno.dev.lock).
// deno-lint-ignore no-import-prefix
import type { Browser, BrowserType, Page } from "npm:playwright-core@1.64.1";
import { buildWeb } from "../web/build.ts";
import { decodeModel } from "../src/model/checkpoint.ts";

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
/** Where the screenshot and the downloaded checkpoint are kept for a person to look at. */
const ARTIFACTS = "/tmp/tforce-browser";
const STEPS = 24;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  map: "application/json",
};

/** Serves the files of `dir` (flat) on 127.0.0.1 at a free port. */
function serve(dir: string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const name = new URL(req.url).pathname.slice(1) || "index.html";
    if (!/^[\w.-]+$/.test(name)) return new Response("not found", { status: 404 });
    try {
      const body = await Deno.readFile(`${dir}/${name}`);
      const type = TYPES[name.split(".").pop()!] ?? "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
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
    throw new Error(`the page reported an error: ${await page.textContent("#error")}`);
  }
}

async function num(page: Page, attr: string): Promise<number> {
  const v = await page.getAttribute("body", `data-${attr}`);
  assert(v !== null, `body has no data-${attr}`);
  return Number(v);
}

/** The exposure panel's numbers (data-exposure-*), checked finite, the chart drawn. */
async function exposure(page: Page): Promise<{ tf: number; fr: number; gap: number; kl: number }> {
  const r = {
    tf: await num(page, "exposure-tf"),
    fr: await num(page, "exposure-fr"),
    gap: await num(page, "exposure-gap"),
    kl: await num(page, "exposure-kl"),
  };
  for (const [k, v] of Object.entries(r)) assert(Number.isFinite(v), `exposure ${k} is not finite: ${v}`);
  assert.deepEqual(await num(page, "exposure-windows"), 8);
  assert(Math.abs(r.gap - (r.fr - r.tf)) < 1e-9, `gap ${r.gap} is not fr - tf`);
  assert(r.kl >= 0, `mean KL ${r.kl} < 0`);
  assert(
    await page.locator("#exposure-chart svg polyline, #exposure-chart svg path").count() > 0,
    "no curves",
  );
  console.log(`  ${await page.textContent("#exposure-status")}`);
  return r;
}

async function downloadCheckpoint(page: Page, to: string): Promise<Uint8Array> {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  await download.saveAs(to);
  return await Deno.readFile(to);
}

Deno.test("browser: the demo page trains, samples, saves and loads a model in headless Chromium", async () => {
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
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console error: ${m.text()}`);
    });
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

    await page.goto(`http://127.0.0.1:${server.addr.port}/?size=tiny&steps=${STEPS}&eval=8&chars=80`);
    await waitForState(page, ["ready"], 30_000);
    console.log(`  ${await page.textContent("#adapter")}`);
    // The precision choice follows the adapter: float16 can be picked only with shader-f16.
    const f16 = await page.getAttribute("body", "data-f16");
    assert(f16 === "true" || f16 === "false", `data-f16 is ${f16}`);
    const f16Disabled =
      await page.locator('#dtype option[value="float16"]').getAttribute("disabled") !== null;
    assert.equal(f16Disabled, f16 === "false");
    console.log(`  shader-f16: ${f16}`);
    lap("page ready");

    await page.click("#train");
    await waitForState(page, ["done"], 120_000);
    lap(`trained ${STEPS} steps`);
    const shot = `${ARTIFACTS}/train.png`;
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`  screenshot: ${shot}`);
    console.log(`  ${await page.textContent("#status")}`);

    // The loss fell, evaluations ran, and samples appeared (one per evaluation unless one overlapped).
    const first = await num(page, "first-loss"), last = await num(page, "last-loss");
    const val = await num(page, "val-loss"), step = await num(page, "step");
    console.log(`  train loss ${first.toFixed(3)} -> ${last.toFixed(3)}, val loss ${val.toFixed(3)}`);
    assert.deepEqual(step, STEPS);
    assert(Number.isFinite(first) && Number.isFinite(last) && Number.isFinite(val), "losses must be finite");
    assert(last < first - 0.3, `training loss did not fall enough: ${first} -> ${last}`);
    const samples = await page.locator("#samples li").allTextContents();
    assert(samples.length >= 1, "no sample appeared");
    assert.deepEqual(await num(page, "samples"), samples.length);
    assert(
      samples[0].includes(`step ${STEPS}`),
      `the newest sample is not from the last step: ${samples[0]}`,
    );
    assert(await page.locator("#chart svg polyline, #chart svg path").count() > 0, "no loss curve drawn");

    // Exposure bias of the trained model: conditioning on its own greedy output costs loss.
    const trained = await exposure(page);
    assert(trained.fr >= trained.tf, `free-running loss ${trained.fr} < teacher-forced ${trained.tf}`);

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
    lap("downloaded");

    // Load it back: the page samples from it, and downloading it again gives the same bytes.
    const before = samples.length;
    await page.setInputFiles("#load", `${ARTIFACTS}/model.safetensors`);
    await waitForState(page, ["done"], 60_000);
    assert.deepEqual(await num(page, "samples"), before + 1);
    assert((await page.getAttribute("body", "data-model"))?.startsWith("loaded"), "the model was not loaded");
    const loaded = await exposure(page);
    for (const k of ["tf", "fr", "kl"] as const) {
      assert(Math.abs(loaded[k] - trained[k]) < 1e-4, `loaded model's exposure ${k} differs: ${loaded[k]}`);
    }
    const again = await downloadCheckpoint(page, `${ARTIFACTS}/model.reloaded.safetensors`);
    assert(again.length === bytes.length && again.every((b, i) => b === bytes[i]), "re-download differs");
    lap("loaded back");

    await page.screenshot({ path: `${ARTIFACTS}/loaded.png`, fullPage: true });
    assert.deepEqual(errors, [], "the page logged errors");
  } finally {
    await browser?.close();
    await server?.shutdown();
    await Deno.remove(dist, { recursive: true });
  }
});
