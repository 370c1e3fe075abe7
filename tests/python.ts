/** Debian's python3, which the PyTorch cross-checks drive, and whether it has torch. */

/** The interpreter the PyTorch cross-checks run. */
export const PYTHON = "/usr/bin/python3";

/** Whether {@linkcode PYTHON} exists and imports torch (the cross-checks are ignored without it). */
export async function hasTorch(): Promise<boolean> {
  try {
    const r = await new Deno.Command(PYTHON, { args: ["-c", "import torch"], stdout: "null", stderr: "null" })
      .output();
    return r.success;
  } catch {
    return false;
  }
}
