/**
 * `--overwrite` on both servers: a second file of the same name replaces the
 * first (no `_1`), and a symbolic link planted under the final name is
 * replaced itself, never written through. Without the flag nothing is ever
 * overwritten (tests/symlink.test.ts and tests/e2e_basic.test.ts).
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import {
  commandFor,
  listDir,
  makeFile,
  run,
  runtimes,
  ScratchDirs,
  sha256File,
  startServer,
} from "./helpers.ts";

const scratch = new ScratchDirs("imgxfer-overwrite-");
after(() => scratch.cleanup());

const CASES = [
  { transport: "tcp", args: [], saved: "received_photo.bin" },
  { transport: "tcp", args: ["--classic"], saved: "received_input.jpeg" },
  { transport: "udp", args: [], saved: "received_photo_udp.bin" },
] as const;

for (const rt of runtimes()) {
  describe(`${rt.name}: --overwrite`, () => {
    for (const c of CASES) {
      test(`${c.transport} ${c.args.join(" ") || "default"}: the second file replaces the first; a planted link is replaced, not followed`, async () => {
        const out = scratch.fresh();
        const first = makeFile(scratch.fresh(), "photo.bin", 70_000);
        const second = makeFile(scratch.fresh(), "photo.bin", 90_000);
        const outside = join(scratch.fresh(), "victim.txt");
        fs.writeFileSync(outside, "must not change");
        fs.symlinkSync(outside, join(out, c.saved));
        const srv = await startServer(rt, `${c.transport}/server.ts`, ["--out", out, "--overwrite"]);
        try {
          for (const file of [first, second]) {
            const res = await run(
              commandFor(rt, `${c.transport}/client.ts`, [
                "--port",
                String(srv.port),
                "--file",
                file,
                ...c.args,
              ]),
              { timeoutMs: 30_000 },
            );
            assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
          }
          await srv.waitFor((e) => e.event === "received" && e.bytes === 90_000, 10_000);
          assert.deepEqual(listDir(out), [c.saved], "one file, no _1");
          assert.equal(fs.lstatSync(join(out, c.saved)).isSymbolicLink(), false);
          assert.equal(sha256File(join(out, c.saved)), sha256File(second));
          assert.equal(fs.readFileSync(outside, "utf8"), "must not change");
        } finally {
          await srv.stop();
        }
      });
    }
  });
}
