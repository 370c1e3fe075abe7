import { assertClose, dot, finiteDiff, runAndRead, testGpu } from "./helpers.ts";
import { createStorage, upload } from "../src/gpu/buffers.ts";
import { geluBackward, geluForward } from "../src/kernels/gelu.ts";
import * as ref from "../src/reference/gelu.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("reference erf matches known values to 1e-14", () => {
  const known: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3.5, 0.9999992569016276],
    [-1.5, -0.9661051464753108],
  ];
  assertClose("erf", known.map(([x]) => ref.erf(x)), known.map(([, y]) => y), { atol: 1e-14, rtol: 0 });
});

Deno.test("reference gelu backward equals finite differences of its forward", () => {
  const x = new Rng(1).uniformArray(40, -5, 5);
  const w = new Rng(2).uniformArray(40);
  const g = ref.geluBackward(x, w);
  const fd = finiteDiff((p) => dot(ref.geluForward(p), w), x);
  assertClose("gelu fd", g, fd, { atol: 1e-8, rtol: 1e-6 });
});

for (const n of [1, 7, 256, 1000, 70_001]) {
  Deno.test(`gelu forward and backward match reference, n=${n}`, async () => {
    const gpu = await testGpu();
    const rng = new Rng(n);
    const x = rng.uniformArray(n, -6, 6);
    x[0] = 0;
    const dy = rng.uniformArray(n);
    const inp = upload(gpu, "inp", x), dout = upload(gpu, "dout", dy);
    const out = createStorage(gpu, "out", n * 4), dinp = createStorage(gpu, "dinp", n * 4);
    const y = await runAndRead(gpu, [await geluForward(gpu, { out, inp }, n)], out);
    assertClose(`gelu fwd n=${n}`, y, ref.geluForward(x), { atol: 3e-7, rtol: 1e-6 });
    const dx = await runAndRead(gpu, [await geluBackward(gpu, { dinp, inp, dout }, n)], dinp);
    assertClose(`gelu bwd n=${n}`, dx, ref.geluBackward(x, dy), { atol: 1e-6, rtol: 1e-5 });
  });
}
