/** The log's tokens/s: a window of records, so bursts of read-backs do not make it swing. */
import assert from "node:assert/strict";
import { ThroughputMeter } from "../src/train/throughput.ts";

Deno.test("throughput: records arriving in pairs a millisecond apart still read the true rate", () => {
  // 1000 tokens per step, a step every 50 ms (20k tokens/s); read-backs land two at a time every 100 ms.
  const meter = new ThroughputMeter(1000, 0, 0);
  const rates: number[] = [];
  for (let step = 2; step <= 200; step += 2) {
    const t = step * 50;
    rates.push(meter.record(step - 1, t), meter.record(step, t + 1));
  }
  // Past the first window (2 s): every rate within 6% of 20k (a pair's first record lags by one step).
  for (const r of rates.slice(80)) assert.ok(Math.abs(r / 20000 - 1) < 0.06, `${r}`);
  // The rate between consecutive records alone would read 1000 tokens / 1 ms = 1M tokens/s.
  assert.ok(Math.max(...rates) < 40000, `${Math.max(...rates)}`);
});

Deno.test("throughput: a restart (after an evaluation) leaves the evaluation's time out", () => {
  const meter = new ThroughputMeter(100, 10, 0);
  assert.equal(meter.record(20, 1000), 1000); // 10 steps x 100 tokens in 1 s
  meter.restart(20, 5000); // 4 s of evaluation and checkpoint
  assert.equal(meter.record(30, 6000), 1000);
  // Without the restart the evaluation would have counted: 10 steps over 5 s.
  const plain = new ThroughputMeter(100, 10, 0);
  plain.record(20, 1000);
  assert.equal(plain.record(30, 6000), 200);
});
