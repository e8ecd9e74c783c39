import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { lastJson, runEntry, runtimes, SAMPLE, sha256File, startServer, tempDir } from "./helpers.ts";

const RTS = runtimes();
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

for (const server of RTS) {
  for (const client of RTS) {
    describe(`${server.name} server, ${client.name} client`, () => {
      for (const mode of ["framed", "classic"] as const) {
        test(`TCP ${mode} delivers the sample image intact`, { timeout: 60000 }, async () => {
          const out = tempDir();
          dirs.push(out);
          const srv = await startServer(server, "tcp/server.ts", ["--out", out, "--once"]);
          try {
            const args = ["--port", String(srv.port), "--file", SAMPLE, "--json"];
            if (mode === "classic") args.push("--classic");
            const res = await runEntry(client, "tcp/client.ts", args);
            assert.equal(res.code, 0, res.stderr);
            const summary = lastJson(res.stdout);
            assert.equal(summary.status, "success");
            assert.equal(summary.bytes, 61306);
            assert.equal(summary.chunks, 15);
            if (mode === "framed") assert.equal(summary.verified, true);
            const rec = await srv.waitFor((e) => e.event === "received");
            assert.equal(rec.complete, true);
            assert.equal(rec.path, join(out, "received_input.jpeg"));
            assert.equal(sha256File(join(out, "received_input.jpeg")), sha256File(SAMPLE));
            assert.equal(await srv.exited(), 0);
          } finally {
            await srv.stop();
          }
        });
      }
      for (const mode of ["reliable", "classic"] as const) {
        test(`UDP ${mode} delivers the sample image intact`, { timeout: 60000 }, async () => {
          const out = tempDir();
          dirs.push(out);
          const srv = await startServer(server, "udp/server.ts", ["--out", out, "--once"]);
          try {
            const args = ["--port", String(srv.port), "--file", SAMPLE, "--json"];
            if (mode === "classic") args.push("--classic");
            const res = await runEntry(client, "udp/client.ts", args);
            assert.equal(res.code, 0, res.stderr);
            const summary = lastJson(res.stdout);
            assert.equal(summary.status, "success");
            assert.equal(summary.mode, mode);
            assert.equal(summary.packets, 15);
            if (mode === "reliable") assert.equal(summary.verified, true);
            const rec = await srv.waitFor((e) => e.event === "received");
            assert.equal(rec.complete, true);
            assert.equal(rec.mode, mode);
            assert.equal(sha256File(join(out, "received_input_udp.jpeg")), sha256File(SAMPLE));
          } finally {
            await srv.stop();
          }
        });
      }
    });
  }
}
