/**
 * Column-block copies between row-major matrices (shaders/columns.wgsl): how the tied head moves one
 * vocabulary slice's logits into the full-width logits, and that slice's columns of the loss gradient back
 * out, when the token embedding is split across buffers.
 *
 * @module
 */
import source from "../../shaders/columns.wgsl" with { type: "text" };
import type { Gpu } from "../gpu/device.ts";
import { type Dispatch, getKernel, grid, type Resource } from "../gpu/kernel.ts";
import { checkTypes, type StorageType, withGrid, withTypes } from "../gpu/source.ts";

const WG = 256;

/** Where a block of columns lies in a row-major matrix. */
export interface ColumnBlock {
  /** Elements per row. */
  readonly width: number;
  /** First column of the block. */
  readonly col: number;
}

/**
 * dst[r, dst.col + j] = src[r, src.col + j] for r < rows, j < cols (written; the rest of dst untouched).
 * `type` (default f32) is the element type of both buffers; f16 needs the `shader-f16` feature.
 */
export async function copyColumns(
  gpu: Gpu,
  b: { dst: Resource; src: Resource },
  s: { rows: number; cols: number; src: ColumnBlock; dst: ColumnBlock; type?: StorageType },
): Promise<Dispatch> {
  const name = "copy_columns";
  const { rows, cols } = s;
  for (const [k, v] of Object.entries({ rows, cols, ...prefixed("src", s.src), ...prefixed("dst", s.dst) })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name}: ${k} = ${v} is not a non-negative integer`);
  }
  for (const [k, block] of [["src", s.src], ["dst", s.dst]] as const) {
    if (block.col + cols > block.width) {
      throw new Error(`${name}: columns [${block.col}, ${block.col + cols}) outside ${k}'s ${block.width}`);
    }
  }
  if (rows * Math.max(s.src.width, s.dst.width) >= 2 ** 32) {
    throw new Error(`${name}: ${rows} rows too many for u32 indexing`);
  }
  const type = s.type ?? "f32";
  checkTypes(gpu, name, { T: type });
  const k = await getKernel(gpu, {
    name: `${name}_${type}`,
    source: withTypes(withGrid(source), { T: type }),
    entryPoint: name,
    constants: { WG },
  });
  const dims = {
    rows,
    cols,
    src_width: s.src.width,
    src_col: s.src.col,
    dst_width: s.dst.width,
    dst_col: s.dst.col,
  };
  return k.dispatch(b, dims, grid(rows * cols, WG));
}

function prefixed(p: string, b: ColumnBlock): Record<string, number> {
  return { [`${p}.width`]: b.width, [`${p}.col`]: b.col };
}
