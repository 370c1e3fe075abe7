/**
 * UTF-8 validity with a position: `TextDecoder` with `fatal: true` says whether bytes are valid UTF-8
 * but not where they stop being so.
 *
 * @module
 */

/**
 * Offset of the first byte of the first ill-formed sequence in `bytes`, or -1 when all of it is valid
 * UTF-8 (Unicode's Table 3-7 of well-formed byte sequences): a byte that never occurs (0xC0, 0xC1,
 * 0xF5..0xFF), a continuation byte without a lead, a lead byte whose continuation bytes are missing
 * (also at the end of the bytes) or out of range, which refuses overlong forms (0xE0 0x80..0x9F,
 * 0xF0 0x80..0x8F), surrogates (0xED 0xA0..0xBF) and code points past U+10FFFF (0xF4 0x90..0xBF).
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const c = bytes[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes after the lead, and the range of the first of them.
    let need: number, lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + need >= n) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k <= need; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return i;
    i += need + 1;
  }
  return -1;
}
