/**
 * The tasks around the demo page: `deno task serve`'s static server, and the esbuild binary that the
 * bundling tasks may run, named for each OS and CPU rather than for Linux on x86-64 alone.
 */
import assert from "node:assert/strict";
import { serveFolder } from "../web/serve.ts";
import { ESBUILD_VERSION, esbuildBinary } from "../web/esbuild_path.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("serve: index.html at /, files by name with their type, anything else 404", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tforce-serve-" });
  await Deno.writeTextFile(`${dir}/index.html`, "<p>hi</p>");
  await Deno.writeTextFile(`${dir}/main.js`, "export {};");
  const server = serveFolder(dir, { port: 0 });
  try {
    const at = `http://127.0.0.1:${server.addr.port}`;
    const get = async (path: string) => {
      const r = await fetch(`${at}${path}`);
      return [r.status, r.headers.get("content-type"), await r.text()];
    };
    assert.deepEqual(await get("/"), [200, "text/html; charset=utf-8", "<p>hi</p>"]);
    assert.deepEqual(await get("/main.js"), [200, "text/javascript; charset=utf-8", "export {};"]);
    for (const path of ["/missing.js", "/..%2Fpasswd", "/sub/x.js", "/.hidden"]) {
      assert.equal((await get(path))[0], 404, path);
    }
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bundling tasks allow the esbuild binary of the machine they run on", async () => {
  assert.equal(
    esbuildBinary("linux", "x86_64"),
    `node_modules/.deno/@esbuild+linux-x64@${ESBUILD_VERSION}/node_modules/@esbuild/linux-x64/bin/esbuild`,
  );
  assert.equal(
    esbuildBinary("darwin", "aarch64"),
    `node_modules/.deno/@esbuild+darwin-arm64@${ESBUILD_VERSION}/node_modules/@esbuild/darwin-arm64/bin/esbuild`,
  );
  assert.match(esbuildBinary("windows", "x86_64"), /@esbuild\/win32-x64\/esbuild\.exe$/);
  // The version is web/build.ts's, and no task names one platform's binary.
  assert.match(
    await Deno.readTextFile(`${ROOT}web/build.ts`),
    new RegExp(`"npm:esbuild@${ESBUILD_VERSION}"`),
  );
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks as Record<string, string>;
  for (const [name, command] of Object.entries(tasks)) {
    assert.ok(!/@esbuild\+/.test(command), `task ${name} names a platform's esbuild`);
  }
  for (const name of ["build", "test"]) assert.match(tasks[name], /\$\(deno run web\/esbuild_path\.ts\)/);
});
