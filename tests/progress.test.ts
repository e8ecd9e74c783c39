/** The progress bar: formatting, and when it draws (never for short transfers, at most every 100 ms). */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { formatDuration, formatProgress, formatRate, ProgressBar } from "../shared/progress.ts";
import { Output } from "../shared/cli.ts";

describe("progress formatting", () => {
  test("rates and durations", () => {
    assert.equal(formatRate(123.4e6), "123 MB/s");
    assert.equal(formatRate(12.34e6), "12.3 MB/s");
    assert.equal(formatRate(1.234e6), "1.23 MB/s");
    assert.equal(formatDuration(7.4), "7s");
    assert.equal(formatDuration(125), "2m05s");
    assert.equal(formatDuration(3720), "1h02m");
    assert.equal(formatDuration(Infinity), "--");
  });

  test("a line with percent, rate and ETA", () => {
    const line = formatProgress("sending", 50e6, 100e6, 2, 10);
    assert.equal(line, "sending [#####.....]  50.0%  25.0 MB/s  ETA 2s");
    assert.equal(formatProgress("x", 100, 100, 1, 4), "x [####] 100.0%  0.00 MB/s  ETA 0s");
    assert.equal(formatProgress("recv", 5e6, undefined, 1), "recv 5.0 MB  5.00 MB/s");
  });
});

describe("progress bar", () => {
  test("silent for the first second, then at most every 100 ms, cleared at the end", () => {
    const writes: string[] = [];
    const bar = new ProgressBar({ write: (t) => writes.push(t), columns: 80 }, "sending", 0);
    bar.update(500, 10, 100);
    assert.equal(writes.length, 0, "nothing during the first second");
    bar.update(1000, 20, 100);
    assert.equal(writes.length, 1);
    assert.match(writes[0], /^\rsending \[#+\.+\] {2}20\.0%/);
    bar.update(1050, 30, 100);
    assert.equal(writes.length, 1, "no redraw within 100 ms");
    bar.update(1100, 40, 100);
    assert.equal(writes.length, 2);
    bar.finish();
    assert.equal(writes[writes.length - 1], "\r\x1b[K");
  });

  test("a short transfer never draws, so finish writes nothing", () => {
    const writes: string[] = [];
    const bar = new ProgressBar({ write: (t) => writes.push(t) }, "sending", 0);
    bar.update(900, 100, 100);
    bar.finish();
    assert.deepEqual(writes, []);
  });

  test("lines are cut to the terminal width", () => {
    const writes: string[] = [];
    const bar = new ProgressBar({ write: (t) => writes.push(t), columns: 20 }, "a-very-long-label", 0);
    bar.update(2000, 1, 2);
    assert.ok(writes[0].replace("\r", "").replace("\x1b[K", "").length <= 19, writes[0]);
  });
});

describe("output conventions", () => {
  test("colour only when asked for", () => {
    assert.equal(new Output({ color: false }).paint("green", "ok"), "ok");
    assert.equal(new Output({ color: true }).paint("green", "ok"), "\x1b[32mok\x1b[0m");
  });

  test("JSON mode and quiet mode flags", () => {
    const json = new Output({ json: true, quiet: false });
    assert.equal(json.json, true);
    const quiet = new Output({ quiet: true });
    assert.equal(quiet.quiet, true);
  });
});
