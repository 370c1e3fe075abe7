import { assertClose, runAndRead, testGpu } from "./helpers.ts";
import { readF16, upload, uploadF16 } from "../src/gpu/buffers.ts";
import { castToF16 } from "../src/kernels/convert.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("cast_f16 rounds like the host's Float16Array, overflow to Inf, every element written", async () => {
  const gpu = await testGpu();
  const n = 4 * 1000 + 8;
  const x = new Rng(5).normalArray(n).map((v, i) => v * 10 ** ((i % 9) - 4)); // magnitudes 1e-4 .. 1e4
  x[0] = 70000, x[1] = -1e6, x[2] = 65504, x[3] = 6e-8; // overflow, largest finite, subnormal
  x[4] = 1 + 2 ** -11; // a tie: rounds to even (1)
  const inp = upload(gpu, "inp", Float32Array.from(x));
  const out = uploadF16(gpu, "out", new Float32Array(n).fill(12345));
  await runAndRead(gpu, [await castToF16(gpu, { out, inp }, n)], inp);
  const got = await readF16(gpu, out, 0, n);
  const want = Float32Array.from(Float16Array.from(Float32Array.from(x)));
  if (got[0] !== Infinity || got[1] !== -Infinity || got[4] !== 1) {
    throw new Error(`specials: ${got.slice(0, 5).join(", ")}`);
  }
  assertClose("cast_f16 vs Float16Array", got.slice(2), want.slice(2), { atol: 0, rtol: 0 });
});

Deno.test("cast_f16 rejects a count that is not a multiple of 4", async () => {
  const gpu = await testGpu();
  const b = upload(gpu, "x", new Float32Array(8));
  let msg = "";
  await castToF16(gpu, { out: b, inp: b }, 6).catch((e) => msg = String(e));
  if (!msg.includes("multiple of 4")) throw new Error(`got '${msg}'`);
});
