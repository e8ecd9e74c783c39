/**
 * Unit tests for shared/partials.ts: old resumable partials (and sidecars)
 * are deleted, recent ones, other files and links are kept.
 * Runs under `deno test` and `bun test`.
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PARTIAL_NAME, prunePartials } from "../shared/partials.ts";
import { runtimes, startServer } from "./helpers.ts";

const root = fs.mkdtempSync(join(tmpdir(), "imgxfer-partials-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const ID = "0123456789abcdef01234567";
const DAY = 24 * 3600_000;

function age(path: string, days: number): void {
  const when = new Date(Date.now() - days * DAY);
  fs.utimesSync(path, when, when);
}

describe("prunePartials", () => {
  test("the name pattern matches partials and sidecars only", () => {
    assert.ok(PARTIAL_NAME.test(`.received_photo.jpeg.${ID}.resume.part`));
    assert.ok(PARTIAL_NAME.test(`.received_photo_udp.jpeg.${ID}.resume.part.json`));
    assert.equal(PARTIAL_NAME.test(`received_photo.jpeg`), false);
    assert.equal(
      PARTIAL_NAME.test(`.received_photo.jpeg.1234abcd-5678.part`),
      false,
      "a plain temporary file",
    );
    assert.equal(PARTIAL_NAME.test(`.received_x.${ID}.resume.part.json.tmp`), false);
  });

  test("deletes partials older than the limit, keeps recent ones and everything else", () => {
    const dir = fs.mkdtempSync(join(root, "d-"));
    const old = `.received_a.bin.${ID}.resume.part`;
    const oldSidecar = `${old}.json`;
    const recent = `.received_b.bin.${ID}.resume.part`;
    const oldFinal = "received_c.bin";
    for (const name of [old, oldSidecar, recent, oldFinal]) fs.writeFileSync(join(dir, name), "x");
    age(join(dir, old), 8);
    age(join(dir, oldSidecar), 8);
    age(join(dir, recent), 6);
    age(join(dir, oldFinal), 30);
    const removed = prunePartials(dir, 7 * DAY);
    assert.deepEqual(removed.sort(), [old, oldSidecar].sort());
    assert.deepEqual(fs.readdirSync(dir).sort(), [recent, oldFinal].sort());
  });

  test("a symbolic link named like a partial is not followed or removed", () => {
    const dir = fs.mkdtempSync(join(root, "l-"));
    const target = join(root, "precious.txt");
    fs.writeFileSync(target, "keep me");
    age(target, 30);
    const link = join(dir, `.received_d.bin.${ID}.resume.part`);
    fs.symlinkSync(target, link);
    assert.deepEqual(prunePartials(dir, 7 * DAY), []);
    assert.equal(fs.readFileSync(target, "utf8"), "keep me");
    assert.ok(fs.lstatSync(link).isSymbolicLink());
  });

  test("a missing folder yields nothing and does not throw", () => {
    assert.deepEqual(prunePartials(join(root, "nope"), 0), []);
  });
});

for (const rt of runtimes()) {
  describe(`${rt.name} servers delete old partials at start`, () => {
    for (const script of ["tcp/server.ts", "udp/server.ts"]) {
      test(`${script} --keep-partials 2: a 3-day-old partial goes, a 1-day-old one stays`, async () => {
        const dir = fs.mkdtempSync(join(root, "srv-"));
        const old = `.received_old.bin.${ID}.resume.part`;
        const recent = `.received_new.bin.${ID}.resume.part`;
        fs.writeFileSync(join(dir, old), "old bytes");
        fs.writeFileSync(join(dir, recent), "new bytes");
        age(join(dir, old), 3);
        age(join(dir, recent), 1);
        const srv = await startServer(rt, script, ["--out", dir, "--keep-partials", "2"]);
        try {
          const pruned = await srv.waitFor((e) => e.event === "pruned", 10_000);
          assert.deepEqual(pruned.names, [old]);
          assert.deepEqual(fs.readdirSync(dir), [recent]);
        } finally {
          await srv.stop();
        }
      });
    }
  });
}
