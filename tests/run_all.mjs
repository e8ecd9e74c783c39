#!/usr/bin/env node
// Runs the whole test suite on Deno and on Bun (the same files under both),
// then prints per-runtime counts and a final line `tests: N passed, N failed`.
// Exit code 0 only when both runtimes ran and nothing failed.
//
//   node tests/run_all.mjs            # both runtimes, all tests
//   node tests/run_all.mjs deno       # one runtime
//   node tests/run_all.mjs bun tests/protocol.test.ts
//
// Written for Node.js (the one thing a fresh machine has); the runtimes come
// from the npm packages `deno` and `bun` in node_modules/.bin.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const args = process.argv.slice(2);
const wanted = args.filter((a) => a === "deno" || a === "bun");
const files = args.filter((a) => a !== "deno" && a !== "bun");
const runtimes = wanted.length > 0 ? wanted : ["deno", "bun"];
const resultsDir = join(root, "results");
mkdirSync(resultsDir, { recursive: true });

function unescape(s) {
  return s.replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&quot;/g, '"').replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&");
}

/** Counts leaf test cases in a JUnit file (Deno lists parents and steps both). */
function countJunit(path) {
  const xml = readFileSync(path, "utf8");
  const cases = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (let m; (m = re.exec(xml));) {
    const name = unescape(/\bname="([^"]*)"/.exec(m[1])?.[1] ?? "");
    const body = m[3] ?? "";
    cases.push({ name, failed: /<failure|<error/.test(body), skipped: /<skipped/.test(body) });
  }
  const leaves = cases.filter((c) => !cases.some((o) => o !== c && o.name.startsWith(`${c.name} > `)));
  const failedParents = cases.filter((c) => c.failed && !leaves.includes(c)).length;
  return {
    passed: leaves.filter((c) => !c.failed && !c.skipped).length,
    failed: leaves.filter((c) => c.failed).length + failedParents,
    skipped: leaves.filter((c) => c.skipped).length,
  };
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const lines = [];
for (const rt of runtimes) {
  if (!existsSync(bin(rt))) {
    console.error(`${rt} is not installed in node_modules/.bin: run 'npm ci' first`);
    totals.failed++;
    lines.push(`${rt}: not installed`);
    continue;
  }
  const junit = join(resultsDir, `junit-${rt}.xml`);
  rmSync(junit, { force: true });
  const targets = files.length > 0 ? files : ["tests/"];
  const cmd = rt === "deno"
    ? [bin("deno"), ["test", "--allow-all", "--no-prompt", `--junit-path=${junit}`, ...targets]]
    : [bin("bun"), [
      "test",
      "--timeout=120000",
      "--reporter=junit",
      `--reporter-outfile=${junit}`,
      ...targets,
    ]];
  console.log(`\n=== ${rt} test ${targets.join(" ")} ===`);
  const started = Date.now();
  const res = spawnSync(cmd[0], cmd[1], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (!existsSync(junit)) {
    totals.failed++;
    lines.push(`${rt}: runner exited ${res.status} without a report`);
    continue;
  }
  const counts = countJunit(junit);
  if (res.status !== 0 && counts.failed === 0) counts.failed = 1; // e.g. a file that failed to load
  totals.passed += counts.passed;
  totals.failed += counts.failed;
  totals.skipped += counts.skipped;
  lines.push(
    `${rt}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped (${seconds} s)`,
  );
}

console.log("");
for (const line of lines) console.log(line);
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed`);
process.exit(totals.failed === 0 && totals.passed > 0 ? 0 : 1);
