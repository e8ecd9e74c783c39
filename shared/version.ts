/**
 * The version of imgxfer, printed by `--version`. Kept equal to
 * `package.json` and `deno.json` (a test checks).
 *
 * @module
 */

/** imgxfer's version. */
export const VERSION = "0.1.0";
