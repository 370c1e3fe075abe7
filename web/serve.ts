/**
 * `deno task serve`: serves the built demo page (web/dist, from `deno task build`) on
 * http://127.0.0.1:8000/ (`--port N` for another port). Open it in a browser with WebGPU.
 *
 * @module
 */

/** Content types of the files a build writes. */
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  map: "application/json",
  json: "application/json",
  svg: "image/svg+xml",
  safetensors: "application/octet-stream",
};

/** Where and what {@linkcode serveFolder} serves. */
export interface ServeOptions {
  /** Port to listen on (default 8000; 0: any free port). */
  port?: number;
  /** Address to listen on (default 127.0.0.1: this machine only). */
  hostname?: string;
}

/**
 * Serves the files of `dir` (one level, no subfolders; `/` is index.html) until the server is shut down.
 */
export function serveFolder(dir: string, opts: ServeOptions = {}): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: opts.hostname ?? "127.0.0.1", port: opts.port ?? 8000, onListen() {} },
    async (req) => {
      const name = decodeURIComponent(new URL(req.url).pathname.slice(1)) || "index.html";
      if (!/^[\w.-]+$/.test(name) || name.startsWith(".")) return new Response("not found", { status: 404 });
      try {
        const body = await Deno.readFile(`${dir}/${name}`);
        const type = TYPES[name.split(".").pop()!] ?? "application/octet-stream";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--port");
  const port = at >= 0 ? Number(Deno.args[at + 1]) : 8000;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) {
    console.error(`serve: --port must be an integer in [0, 65536) (got ${Deno.args[at + 1]})`);
    Deno.exit(2);
  }
  const dir = new URL("dist", import.meta.url).pathname;
  const server = serveFolder(dir, { port });
  console.log(`serving ${dir} at http://${server.addr.hostname}:${server.addr.port}/ (Ctrl-C stops)`);
}
