/** The benchmark chart: scale and SVG content from a report. */

import { test } from "node:test";
import assert from "node:assert/strict";
import { niceMax, udpBenchSvg } from "../bench/chart.ts";

test("axis maxima are 1, 2 or 5 times a power of ten, above the value", () => {
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(3), 5);
  assert.equal(niceMax(536), 1000);
  assert.equal(niceMax(150), 200);
  assert.equal(niceMax(100), 100);
});

test("the UDP chart has a bar per tool and payload and a line per runtime", () => {
  const row = (
    section: string,
    tool: string,
    runtime: string | undefined,
    payload: number,
    mb: number,
    loss?: number,
  ) => ({
    section,
    tool,
    runtime,
    payload,
    label: tool,
    lossPercent: loss,
    summary: { medianMBps: mb },
  });
  const svg = udpBenchSvg({
    date: "2026-11-25",
    rows: [
      row("loopback", "ours", "bun", 1400, 253),
      row("loopback", "uftp", undefined, 1400, 536),
      row("loopback", "ours", "bun", 8192, 262),
      row("loss", "ours", "bun", 1400, 111, 0),
      row("loss", "ours", "bun", 1400, 62, 5),
    ],
  });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>$/);
  assert.equal((svg.match(/<rect x=[^>]*><title>/g) ?? []).length, 3, "three bars");
  assert.match(svg, /<title>imgxfer \(bun\): 253\.0<\/title>/);
  assert.match(svg, /<title>uftp: 536\.0<\/title>/);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 1, "one loss line");
  assert.equal((svg.match(/<circle/g) ?? []).length, 2, "two loss points");
});
