/**
 * The samples list: each sample streams in as the model writes it, its prompt set apart; once written,
 * every generated character is shaded by the probability the model gave it, and pointing at one (or
 * moving along with the arrow keys) shows the five characters the model found most likely there.
 *
 * @module
 */
import type { TokenView } from "./lens.ts";

/** Visible stand-ins for characters that are hard to see. */
export function visible(text: string): string {
  return text.replace(/\n/g, "↵").replace(/ /g, "␣").replace(/\t/g, "⇥");
}

/** One sample being written. */
export class SampleEntry {
  readonly #li: HTMLLIElement;
  readonly #gen: HTMLSpanElement;
  readonly #details: HTMLElement;
  #views: TokenView[] = [];
  #selected = -1;

  /** An entry in `li`; `details` is where the character under the pointer is explained. */
  constructor(li: HTMLLIElement, gen: HTMLSpanElement, details: HTMLElement) {
    this.#li = li;
    this.#gen = gen;
    this.#details = details;
  }

  /** Appends freshly generated text. */
  append(text: string): void {
    this.#gen.append(text);
  }

  /** Marks the sample as cut short (Stop) or failed, with a note. */
  note(text: string): void {
    const span = Object.assign(document.createElement("span"), { className: "meta", textContent: text });
    this.#li.append(span);
  }

  /**
   * Replaces the generated text by one span per token, shaded by its probability (`views`, in order, one
   * per generated token), and makes the entry explorable.
   */
  shade(views: TokenView[], temperature: number): void {
    this.#views = views;
    this.#gen.replaceChildren(
      ...views.map((v, i) => {
        const s = document.createElement("span");
        s.className = "tok";
        s.textContent = v.text;
        s.dataset.i = String(i);
        s.dataset.p = v.p.toFixed(4);
        s.style.setProperty("--p", v.p.toFixed(3));
        return s;
      }),
    );
    this.#li.tabIndex = 0;
    this.#li.classList.add("shaded");
    this.#li.dataset.temperature = String(temperature);
    this.#li.setAttribute(
      "aria-label",
      "sample: use the left and right arrow keys to see how sure the model was of each character",
    );
    const select = (ev: Event) => {
      const i = (ev.target as HTMLElement).closest<HTMLElement>(".tok")?.dataset.i;
      if (i !== undefined) this.#select(Number(i));
    };
    this.#gen.addEventListener("pointerover", select);
    this.#gen.addEventListener("pointerdown", select);
    this.#li.addEventListener("focus", () => this.#select(Math.max(0, this.#selected)));
    this.#li.addEventListener("keydown", (ev) => {
      const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
      if (step === 0) return;
      ev.preventDefault();
      this.#select(Math.min(this.#views.length - 1, Math.max(0, this.#selected + step)));
    });
  }

  #select(i: number): void {
    const v = this.#views[i];
    if (!v) return;
    this.#gen.querySelector(".tok.selected")?.classList.remove("selected");
    this.#gen.children[i]?.classList.add("selected");
    this.#selected = i;
    const d = this.#details;
    d.replaceChildren();
    const head = document.createElement("p");
    head.append(
      `Character ${v.position} `,
      code(visible(v.text)),
      `: the model gave it p = ${v.p.toFixed(3)} after reading ${v.context} characters. Its top 5 there:`,
    );
    const bars = document.createElement("ol");
    bars.className = "top5";
    for (const c of v.top) {
      const li = document.createElement("li");
      const bar = Object.assign(document.createElement("span"), { className: "bar" });
      bar.style.width = `${(c.p * 100).toFixed(1)}%`;
      li.append(code(visible(c.text)), bar, ` ${c.p.toFixed(3)}`);
      if (c.text === v.text) li.classList.add("chosen");
      bars.append(li);
    }
    d.append(head, bars);
  }
}

function code(text: string): HTMLElement {
  return Object.assign(document.createElement("code"), { textContent: text });
}

/** Starts a sample at the top of `list`: a label, the prompt (set apart) and an empty generated part. */
export function beginSample(
  list: HTMLOListElement,
  details: HTMLElement,
  label: string,
  prompt: string,
): SampleEntry {
  const li = document.createElement("li");
  const meta = Object.assign(document.createElement("span"), { className: "meta", textContent: label });
  const p = Object.assign(document.createElement("span"), { className: "prompt", textContent: prompt });
  p.title = "the prompt";
  const gen = Object.assign(document.createElement("span"), { className: "gen" });
  li.append(meta, p, gen);
  list.prepend(li);
  return new SampleEntry(li, gen, details);
}
