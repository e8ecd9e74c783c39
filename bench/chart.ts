/**
 * `chart`: draws a benchmark's results as an SVG (no dependencies): grouped
 * bars of goodput per tool and payload, and goodput against loss.
 *
 * ```sh
 * deno task chart                          # results/bench-udp.json → results/bench-udp.svg
 * deno task chart --in results/bench-udp.json --out bench/udp-latest.svg
 * ```
 *
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import { COMMON_FLAGS_HELP, EXIT_CODES_HELP, parseFlags, runMain, str, versionLine } from "../shared/cli.ts";
import { CliError, ExitCode } from "../shared/errors.ts";
import { runtime } from "../shared/runtime.ts";
import { ROOT } from "./procs.ts";

/** One bar group (an x position) with a value per series. */
export interface BarGroup {
  /** Label under the group. */
  label: string;
  /** Value per series name (missing: no bar). */
  values: Record<string, number | undefined>;
}

/** One line of a line chart. */
export interface LineSeries {
  /** Legend name. */
  name: string;
  /** Points, x ascending. */
  points: Array<[number, number]>;
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b"];

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A "nice" axis maximum above `value` (1, 2 or 5 × 10^n). */
export function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 5, 10]) if (m * exp >= value) return m * exp;
  return 10 * exp;
}

interface Panel {
  x: number;
  y: number;
  width: number;
  height: number;
}

function axes(p: Panel, max: number, yLabel: string, out: string[]): void {
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    const y = p.y + p.height - (p.height * i) / 5;
    out.push(`<line x1="${p.x}" y1="${y}" x2="${p.x + p.width}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${p.x - 6}" y="${y + 4}" text-anchor="end" font-size="11">${Math.round(v)}</text>`);
  }
  out.push(`<line x1="${p.x}" y1="${p.y}" x2="${p.x}" y2="${p.y + p.height}" stroke="#333"/>`);
  out.push(
    `<text x="${p.x - 40}" y="${p.y + p.height / 2}" font-size="12" text-anchor="middle" ` +
      `transform="rotate(-90 ${p.x - 40} ${p.y + p.height / 2})">${escapeXml(yLabel)}</text>`,
  );
}

function legend(names: string[], x: number, y: number, out: string[]): void {
  names.forEach((name, i) => {
    out.push(`<rect x="${x}" y="${y + i * 16}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${x + 14}" y="${y + i * 16 + 9}" font-size="11">${escapeXml(name)}</text>`);
  });
}

/** Grouped bars in panel `p`. */
export function barsSvg(
  p: Panel,
  title: string,
  groups: BarGroup[],
  series: string[],
  yLabel: string,
): string[] {
  const out: string[] = [];
  const max = niceMax(Math.max(0, ...groups.flatMap((g) => series.map((s) => g.values[s] ?? 0))));
  out.push(
    `<text x="${p.x + p.width / 2}" y="${p.y - 10}" font-size="14" text-anchor="middle">${
      escapeXml(title)
    }</text>`,
  );
  axes(p, max, yLabel, out);
  const groupWidth = p.width / Math.max(1, groups.length);
  const barWidth = (groupWidth * 0.8) / Math.max(1, series.length);
  groups.forEach((g, gi) => {
    const x0 = p.x + gi * groupWidth + groupWidth * 0.1;
    series.forEach((s, si) => {
      const v = g.values[s];
      if (v === undefined) return;
      const h = (p.height * v) / max;
      const x = x0 + si * barWidth;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${(p.y + p.height - h).toFixed(1)}" width="${
          (barWidth - 2).toFixed(1)
        }" ` +
          `height="${h.toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${
            escapeXml(`${s}: ${v.toFixed(1)}`)
          }</title></rect>`,
      );
      out.push(
        `<text x="${(x + barWidth / 2 - 1).toFixed(1)}" y="${
          (p.y + p.height - h - 3).toFixed(1)
        }" font-size="9" ` +
          `text-anchor="middle">${Math.round(v)}</text>`,
      );
    });
    out.push(
      `<text x="${(p.x + gi * groupWidth + groupWidth / 2).toFixed(1)}" y="${
        p.y + p.height + 16
      }" font-size="12" ` +
        `text-anchor="middle">${escapeXml(g.label)}</text>`,
    );
  });
  return out;
}

/** Lines with markers in panel `p`. */
export function linesSvg(
  p: Panel,
  title: string,
  series: LineSeries[],
  xLabel: string,
  yLabel: string,
): string[] {
  const out: string[] = [];
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const xMax = Math.max(1, ...xs);
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map(([, y]) => y))));
  out.push(
    `<text x="${p.x + p.width / 2}" y="${p.y - 10}" font-size="14" text-anchor="middle">${
      escapeXml(title)
    }</text>`,
  );
  axes(p, max, yLabel, out);
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    const px = p.x + (p.width * x) / xMax;
    out.push(
      `<text x="${px.toFixed(1)}" y="${p.y + p.height + 16}" font-size="11" text-anchor="middle">${x}</text>`,
    );
  }
  out.push(
    `<text x="${p.x + p.width / 2}" y="${p.y + p.height + 32}" font-size="12" text-anchor="middle">${
      escapeXml(xLabel)
    }</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.map(([x, y]) => [p.x + (p.width * x) / xMax, p.y + p.height - (p.height * y) / max]);
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${
        pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")
      }"/>`,
    );
    for (const [x, y] of pts) {
      out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"/>`);
    }
  });
  return out;
}

interface BenchRow {
  section: string;
  tool: string;
  runtime?: string;
  payload: number;
  label: string;
  lossPercent?: number;
  summary?: { medianMBps?: number };
}

/** The UDP benchmark's report (bench/udp.ts) as one SVG with two panels. */
export function udpBenchSvg(
  report: { date?: string; rows: BenchRow[]; machine?: { cpuModel?: string } },
): string {
  const rows = report.rows;
  const name = (r: BenchRow) => (r.tool === "ours" ? `imgxfer (${r.runtime})` : r.tool);
  const loop = rows.filter((r) => r.section === "loopback" && r.summary?.medianMBps !== undefined);
  const series = [...new Set(loop.map(name))];
  const payloads = [...new Set(loop.map((r) => r.payload))].sort((a, b) => a - b);
  const groups: BarGroup[] = payloads.map((payload) => ({
    label: `${payload} B`,
    values: Object.fromEntries(
      loop.filter((r) => r.payload === payload).map((r) => [name(r), r.summary?.medianMBps]),
    ),
  }));
  const loss = rows.filter((r) => r.section === "loss" && r.summary?.medianMBps !== undefined);
  const lines: LineSeries[] = [...new Set(loss.map(name))].map((n) => ({
    name: n,
    points: loss.filter((r) => name(r) === n).map((r) => [r.lossPercent ?? 0, r.summary?.medianMBps ?? 0]),
  }));
  const width = 960;
  const height = 420;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  out.push(
    ...barsSvg(
      { x: 70, y: 40, width: 470, height: 300 },
      "Loopback goodput, file to file (median)",
      groups,
      series,
      "MB/s",
    ),
  );
  legend(series, 80, 44, out);
  out.push(
    ...linesSvg(
      { x: 650, y: 40, width: 280, height: 300 },
      "Reliable UDP through the relay",
      lines,
      "loss each way (%)",
      "MB/s",
    ),
  );
  legend(lines.map((l) => l.name), 800, 44, out);
  out.push(
    `<text x="10" y="${height - 8}" font-size="10" fill="#666">${
      escapeXml(`imgxfer bench:udp ${report.date ?? ""} ${report.machine?.cpuModel ?? ""}`)
    }</text>`,
  );
  out.push("</svg>");
  return out.join("\n");
}

/** `--help` text. */
export const HELP = `Usage: chart [options]

Draws the UDP benchmark's JSON report as an SVG chart: goodput per tool and
payload on loopback, and goodput against loss through the relay.

Options:
  --in PATH    the report (default results/bench-udp.json)
  --out PATH   the SVG to write (default results/bench-udp.svg)
${COMMON_FLAGS_HELP}

${EXIT_CODES_HELP}`;

/** Runs the chart command with `argv`; resolves to the exit code. */
export function main(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, {
    in: { type: "string", default: join(ROOT, "results", "bench-udp.json") },
    out: { type: "string", default: join(ROOT, "results", "bench-udp.svg") },
  });
  if (flags.help) return Promise.resolve((console.log(HELP), 0));
  if (flags.version) {
    return Promise.resolve((console.log(versionLine("chart", runtime.name, runtime.version)), 0));
  }
  let report;
  try {
    report = JSON.parse(fs.readFileSync(str(flags, "in"), "utf8"));
  } catch (error) {
    throw new CliError(
      `cannot read the report '${str(flags, "in")}': ${(error as Error).message}`,
      ExitCode.FILE,
    );
  }
  fs.writeFileSync(str(flags, "out"), udpBenchSvg(report));
  if (flags.quiet !== true) console.error(`[*] Chart written to ${str(flags, "out")}`);
  return Promise.resolve(ExitCode.OK);
}

if (import.meta.main) runMain("chart", main);
