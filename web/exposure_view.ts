/**
 * What the exposure panel shows of a measurement (src/train/exposure.ts): the chart, a summary line and
 * the figures the page reports in its data attributes. With the language's true law (the oracle), the
 * excess loss KL(p* ‖ model) after the true history and after the model's own continuation; without it,
 * the drift of the predictions, labelled as such. The true prefix is shaded.
 *
 * @module
 */
import type { ExposureResult } from "../src/train/exposure.ts";
import type { ChartSpec } from "./chart.ts";

/** The exposure panel's content for a measurement that took `seconds`. */
export interface ExposureView {
  spec: ChartSpec;
  summary: string;
  /** exposureTf, -Fr, -Gap, -Kl, -Windows, and with the oracle exposureOracleGold and -Own. */
  data: Record<string, number>;
}

/** The chart, summary and figures of `r`. */
export function exposureView(r: ExposureResult, seconds: number): ExposureView {
  const P = r.prefix;
  const pts = (a: (number | null)[]) => a.map((y, t) => [t, y ?? NaN] as const);
  const gap = r.gold_loss_after_own_mean - r.gold_loss_after_gold_mean;
  const gold = r.oracle_kl_gold, own = r.oracle_kl_own;
  const spec: ChartSpec = {
    xLabel: "position t (predicting character t+1)",
    yLabel: gold && own ? "excess loss KL(p* ‖ model), nats" : "nats",
    series: gold && own
      ? [
        { name: "after the true history", points: pts(gold) },
        { name: "after its own continuation", points: pts(own) },
      ]
      : [
        { name: "loss of the true next character, true history", points: pts(r.gold_loss_after_gold) },
        { name: "the same after its own continuation", points: pts(r.gold_loss_after_own) },
        { name: "drift KL(true hist. ‖ own hist.)", points: pts(r.drift_kl), dashed: true },
      ],
    regions: [{ x0: -0.5, x1: P - 0.5, label: "true prefix" }],
    xDomain: [0, r.positions - 1],
  };
  const f = (v: number | null | undefined) => v == null ? "n/a" : v.toFixed(3);
  const summary =
    (gold && own
      ? `Excess loss over the true law, positions ${P}..${r.positions - 1} of ${r.windows} windows: ` +
        `${f(r.oracle_kl_gold_mean)} nats/char after the true history, ${f(r.oracle_kl_own_mean)} after ` +
        `its own continuation. `
      : "No true law for this text: these figures measure drift, not error. ") +
    `Loss of the true next character: teacher-forced ${f(r.gold_loss_after_gold_mean)}, free-running ` +
    `${f(r.gold_loss_after_own_mean)} (gap ${gap >= 0 ? "+" : ""}${gap.toFixed(3)}); mean drift KL ` +
    `${r.drift_kl_mean.toFixed(4)} · ${seconds.toFixed(1)} s`;
  const data: Record<string, number> = {
    exposureTf: r.gold_loss_after_gold_mean,
    exposureFr: r.gold_loss_after_own_mean,
    exposureGap: gap,
    exposureKl: r.drift_kl_mean,
    exposureWindows: r.windows,
  };
  if (gold && own) {
    data.exposureOracleGold = r.oracle_kl_gold_mean ?? NaN;
    data.exposureOracleOwn = r.oracle_kl_own_mean ?? NaN;
  }
  return { spec, summary, data };
}
