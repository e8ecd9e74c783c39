/**
 * The README's quick start: the demo (bench/demo.ts) runs six real transfers
 * of the sample image (TCP framed, classic and keyed; UDP reliable, classic
 * and keyed), each server and client a separate process, on Deno with the
 * `demo` task's permissions and on Bun, and reports every file intact.
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { commandFor, run, runtimes, SAMPLE, ScratchDirs, sha256File } from "./helpers.ts";

const scratch = new ScratchDirs("imgxfer-demo-");
after(() => scratch.cleanup());

for (const rt of runtimes()) {
  describe(`${rt.name}: the demo`, () => {
    test("six transfers of the sample image, every one intact, the key file beside --out", async () => {
      const dir = scratch.fresh();
      const out = join(dir, "demo");
      const permissions = [
        "--allow-run",
        "--allow-env",
        "--allow-read",
        `--allow-write=${dir}`,
        "--allow-net=127.0.0.1",
      ];
      const res = await run(commandFor(rt, "bench/demo.ts", ["--out", out], permissions), {
        timeoutMs: 90_000,
      });
      assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
      const intact = res.stdout.split("\n").find((l) => l.startsWith("| Received intact"));
      assert.ok(intact, res.stdout);
      assert.equal(intact.match(/yes \(SHA-256 equal\)/g)?.length, 6, intact);
      for (
        const label of ["TCP framed", "TCP classic", "TCP + key", "UDP reliable", "UDP classic", "UDP + key"]
      ) {
        assert.ok(res.stdout.includes(`| ${label}`), `no '${label}' column`);
      }
      const saved = fs.readdirSync(out).sort();
      assert.equal(saved.length, 6, saved.join(", "));
      for (const name of saved) assert.equal(sha256File(join(out, name)), sha256File(SAMPLE), name);
      assert.ok(fs.existsSync(join(`${out}-key`, "imgxfer.key")));
    });
  });
}
