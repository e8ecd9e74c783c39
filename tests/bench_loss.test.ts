/**
 * The loss benchmark (bench/loss.ts) end to end, small: 4 MiB through real
 * kernel packet loss (0% and 5%, nftables in a private network namespace),
 * TCP framed and reliable UDP on the runtime running this test. Where no
 * network namespace can be made (not root, no user namespaces, no nft) the
 * benchmark must say why and exit 0. Checks outcomes only, never timings.
 */

import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { runtime } from "../shared/runtime.ts";
import { commandFor, run, runtimeNamed, ScratchDirs } from "./helpers.ts";

const scratch = new ScratchDirs("imgxfer-bench-loss-");
after(() => scratch.cleanup());

interface LossReport {
  skipped?: string;
  file?: { sha256: string };
  rows?: Array<{
    label: string;
    lossPercent: number;
    runs: Array<{ ok: boolean; error?: string; sha256?: string; details: { nft?: { packets: number } } }>;
  }>;
}

test(`${runtime.name}: bench:loss --quick sends intact files through kernel loss, or says why it skipped`, async () => {
  const rt = runtimeNamed(runtime.name);
  const report = join(scratch.fresh(), "bench-loss.json");
  const args = [
    ...["--quick", "--loss", "0,5", "--size", "4", "--runs", "1"],
    ...["--tools", "tcp-framed,udp-reliable", "--runtimes", rt.name, "--report", report],
  ];
  const permissions = [
    "--allow-run",
    "--allow-env",
    "--allow-read",
    "--allow-write",
    "--allow-net=127.0.0.1",
  ];
  const res = await run(commandFor(rt, "bench/loss.ts", args, permissions), { timeoutMs: 300_000 });
  const output = `${res.stdout}\n${res.stderr}`;
  assert.equal(res.code, 0, output);
  const written = JSON.parse(fs.readFileSync(report, "utf8")) as LossReport;
  const skipped = /^loss sweep skipped: (.+)$/m.exec(res.stdout)?.[1];
  if (skipped !== undefined) {
    console.log(`SKIP: ${skipped}`);
    assert.equal(written.skipped, skipped, "the report names the same reason");
    return;
  }
  assert.ok(written.file?.sha256, output);
  const labels = [`tcp-framed (${rt.name})`, `udp-reliable (${rt.name})`];
  for (const label of labels) {
    for (const loss of [0, 5]) {
      const row = written.rows?.find((r) => r.label === label && r.lossPercent === loss);
      assert.ok(row, `no row for ${label} at ${loss}%:\n${output}`);
      assert.equal(row.runs.length, 1);
      const [r] = row.runs;
      assert.ok(r.ok, `${label} at ${loss}%: ${r.error}\n${output}`);
      assert.equal(r.sha256, written.file?.sha256, `${label} at ${loss}%`);
      assert.ok((r.details.nft?.packets ?? 0) > 0, "the nft rule counted the transfer's packets");
    }
  }
  assert.match(res.stdout, /Goodput \(median MB\/s\)/);
  assert.match(res.stdout, /Best TCP vs best reliable UDP/);
});
