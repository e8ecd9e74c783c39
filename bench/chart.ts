/**
 * `chart`: draws a benchmark's results as an SVG (no dependencies): grouped
 * bars of goodput per tool and payload, and goodput against loss (UDP);
 * throughput, peak memory and small-file time per tool (TCP); goodput against
 * kernel packet loss per tool (bench/loss.ts); all stacked (the combined report
 * of `bench/all.ts`).
 *
 * ```sh
 * deno task chart                          # results/bench-udp.json → results/bench-udp.svg
 * deno task chart --in results/bench-udp.json --out bench/udp-latest.svg
 * deno task chart --in results/bench-tcp.json --out results/bench-tcp.svg
 * deno task chart --in results/bench.json --out results/bench.svg
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
  /** Value per series name (missing or null: no bar). */
  values: Record<string, number | null | undefined>;
}

/** One line of a line chart. */
export interface LineSeries {
  /** Legend name. */
  name: string;
  /** Points, x ascending. */
  points: Array<[number, number]>;
}

const COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#9467bd",
  "#d62728",
  "#8c564b",
  "#17becf",
  "#7f7f7f",
  "#e377c2",
];

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
      if (v === undefined || v === null) return;
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

/** An SVG document of `width` × `height` on white, holding `body`. */
function svgDocument(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...body,
    "</svg>",
  ].join("\n");
}

/** The grey line at a chart's foot: which benchmark, when, on which CPU. */
function footer(
  height: number,
  bench: string,
  report: { date?: string; machine?: { cpuModel?: string } },
): string {
  return `<text x="10" y="${height - 8}" font-size="10" fill="#666">${
    escapeXml(`imgxfer ${bench} ${report.date ?? ""} ${report.machine?.cpuModel ?? ""}`)
  }</text>`;
}

interface BenchRow {
  section: string;
  tool: string;
  runtime?: string;
  payload: number;
  label: string;
  lossPercent?: number;
  summary?: { medianMBps?: number | null };
}

/** The UDP benchmark's report (bench/udp.ts) as one SVG with two panels. */
export function udpBenchSvg(
  report: { date?: string; rows: BenchRow[]; machine?: { cpuModel?: string } },
): string {
  const rows = report.rows;
  const name = (r: BenchRow) => (r.tool === "ours" ? `imgxfer (${r.runtime})` : r.tool);
  // Rows without a successful run (yet: the report is redrawn after every run) have a null median.
  const measured = (r: BenchRow) => typeof r.summary?.medianMBps === "number";
  const loop = rows.filter((r) => r.section === "loopback" && measured(r));
  const series = [...new Set(loop.map(name))];
  const payloads = [...new Set(loop.map((r) => r.payload))].sort((a, b) => a - b);
  const groups: BarGroup[] = payloads.map((payload) => ({
    label: `${payload} B`,
    values: Object.fromEntries(
      loop.filter((r) => r.payload === payload).map((r) => [name(r), r.summary?.medianMBps]),
    ),
  }));
  const loss = rows.filter((r) => r.section === "loss" && measured(r));
  const lines: LineSeries[] = [...new Set(loss.map(name))].map((n) => ({
    name: n,
    points: loss.filter((r) => name(r) === n).map((r) => [r.lossPercent ?? 0, r.summary?.medianMBps ?? 0]),
  }));
  const width = 960;
  const height = 420;
  const out: string[] = [];
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
  out.push(footer(height, "bench:udp", report));
  return svgDocument(width, height, out);
}

/** One row of the loss benchmark's report (bench/loss.ts): a tool at one loss level. */
export interface LossBenchRow {
  /** Series name, e.g. "tcp-framed (deno)" or "socat". */
  label: string;
  lossPercent: number;
  summary?: { medianMBps?: number | null };
}

/**
 * The loss benchmark's report (bench/loss.ts) as one SVG: median goodput
 * against kernel packet loss per tool, and the same as a share of the tool's
 * own goodput at 0% loss. A skipped sweep (no rows) gives a one-line note.
 */
export function lossBenchSvg(
  report: { date?: string; rows?: LossBenchRow[]; skipped?: string; machine?: { cpuModel?: string } },
): string {
  const rows = (report.rows ?? []).filter((r) => typeof r.summary?.medianMBps === "number");
  const width = 960;
  const height = 420;
  if (rows.length === 0) {
    const note = report.skipped ? `loss sweep skipped: ${report.skipped}` : "loss sweep: no successful run";
    return svgDocument(width, 40, [`<text x="10" y="24" font-size="12">${escapeXml(note)}</text>`]);
  }
  const names = [...new Set(rows.map((r) => r.label))];
  const points = (n: string) =>
    rows.filter((r) => r.label === n).sort((a, b) => a.lossPercent - b.lossPercent)
      .map((r): [number, number] => [r.lossPercent, r.summary!.medianMBps!]);
  const lines: LineSeries[] = names.map((n) => ({ name: n, points: points(n) }));
  const relative: LineSeries[] = names.flatMap((n) => {
    const own = points(n);
    const zero = own.find(([x]) => x === 0)?.[1];
    return zero
      ? [{ name: n, points: own.map(([x, y]): [number, number] => [x, Math.round((1000 * y) / zero) / 10]) }]
      : [];
  });
  const out: string[] = [];
  out.push(
    ...linesSvg(
      { x: 70, y: 40, width: 380, height: 300 },
      "Goodput against kernel packet loss (median)",
      lines,
      "packets dropped each direction (%)",
      "MB/s",
    ),
  );
  legend(names, 330, 44, out);
  out.push(
    ...linesSvg(
      { x: 560, y: 40, width: 380, height: 300 },
      "Share of the tool's own 0% goodput",
      relative,
      "packets dropped each direction (%)",
      "% of own 0%",
    ),
  );
  out.push(footer(height, "bench:loss", report));
  return svgDocument(width, height, out);
}

// ------------------------------------------------------------------ TCP ----

/** One horizontal bar. */
export interface HBar {
  /** Label left of the bar. */
  label: string;
  /** Length (missing: no bar, "-" shown). */
  value: number | undefined;
  /** Fill colour. */
  color: string;
  /** Fill opacity (default 1). */
  opacity?: number;
  /** Text after the bar (default: the value, rounded). */
  text?: string;
}

/**
 * Horizontal bars in panel `p`, one per `rowHeight` pixels, with labels left
 * of `p.x` (when `labels`), a value axis at the bottom, and an optional limit
 * line (a target).
 */
export function hbarsSvg(
  p: Panel,
  title: string,
  bars: HBar[],
  options: { unit: string; labels?: boolean; rowHeight?: number; limit?: { value: number; label: string } },
): string[] {
  const out: string[] = [];
  const rowHeight = options.rowHeight ?? 18;
  const top = Math.max(0, options.limit?.value ?? 0, ...bars.map((b) => b.value ?? 0));
  // A finer scale than niceMax's (1, 2, 5): bars use most of the width; quarters stay round.
  const exp = top > 0 ? Math.pow(10, Math.floor(Math.log10(top))) : 1;
  const max = top > 0
    ? [1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10].map((m) => m * exp).find((m) => m >= top)!
    : 1;
  const height = Math.max(rowHeight, bars.length * rowHeight);
  out.push(
    `<text x="${p.x + p.width / 2}" y="${p.y - 10}" font-size="13" text-anchor="middle">${
      escapeXml(title)
    }</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const x = p.x + (p.width * i) / 4;
    out.push(`<line x1="${x}" y1="${p.y}" x2="${x}" y2="${p.y + height}" stroke="#e4e4e4"/>`);
    out.push(
      `<text x="${x}" y="${p.y + height + 14}" font-size="10" text-anchor="middle">${
        Math.round((max * i) / 4)
      }</text>`,
    );
  }
  out.push(
    `<text x="${p.x + p.width / 2}" y="${p.y + height + 28}" font-size="11" text-anchor="middle">${
      escapeXml(options.unit)
    }</text>`,
  );
  out.push(`<line x1="${p.x}" y1="${p.y}" x2="${p.x}" y2="${p.y + height}" stroke="#333"/>`);
  if (bars.length === 0) {
    out.push(`<text x="${p.x + 8}" y="${p.y + 13}" font-size="11" fill="#666">no data</text>`);
  }
  bars.forEach((b, i) => {
    const y = p.y + i * rowHeight;
    if (options.labels !== false) {
      out.push(
        `<text x="${p.x - 6}" y="${y + rowHeight * 0.7}" font-size="11" text-anchor="end">${
          escapeXml(b.label)
        }</text>`,
      );
    }
    if (b.value === undefined) {
      out.push(`<text x="${p.x + 4}" y="${y + rowHeight * 0.7}" font-size="10" fill="#666">-</text>`);
      return;
    }
    const w = (p.width * b.value) / max;
    out.push(
      `<rect x="${p.x}" y="${(y + 2).toFixed(1)}" width="${w.toFixed(1)}" height="${
        rowHeight - 4
      }" fill="${b.color}"` +
        `${b.opacity === undefined ? "" : ` fill-opacity="${b.opacity}"`}><title>${
          escapeXml(`${b.label}: ${b.text ?? b.value.toFixed(1)}`)
        }</title></rect>`,
    );
    out.push(
      `<text x="${(p.x + w + 4).toFixed(1)}" y="${y + rowHeight * 0.7}" font-size="10">${
        escapeXml(b.text ?? String(Math.round(b.value)))
      }</text>`,
    );
  });
  if (options.limit) {
    const x = p.x + (p.width * options.limit.value) / max;
    out.push(
      `<line x1="${x.toFixed(1)}" y1="${p.y - 2}" x2="${x.toFixed(1)}" y2="${
        p.y + height
      }" stroke="#d62728" ` +
        `stroke-dasharray="4 3"/>`,
    );
    out.push(
      `<text x="${(x - 3).toFixed(1)}" y="${
        p.y + height - 4
      }" font-size="10" fill="#d62728" text-anchor="end">${escapeXml(options.limit.label)}</text>`,
    );
  }
  return out;
}

/** A row of the TCP benchmark's report (bench/tcp.ts), as far as the chart needs it. */
export interface TcpBenchRow {
  section: string;
  sizeMiB: number;
  tool: string;
  runtime?: string;
  mode?: string;
  buffer?: number;
  label: string;
  skipped?: string;
  summary?: { medianMBps?: number | null; medianSeconds?: number | null; receiverRssMiB?: number | null };
}

const TCP_COLORS: Record<string, string> = {
  deno: "#1f77b4",
  bun: "#ff7f0e",
  compiled: "#2ca02c",
  peer: "#7f7f7f",
  iperf3: "#d62728",
};

function tcpColor(r: TcpBenchRow): string {
  if (r.tool === "ours") return TCP_COLORS[r.runtime ?? ""] ?? COLORS[3];
  return r.tool === "iperf3" ? TCP_COLORS.iperf3 : TCP_COLORS.peer;
}

const TCP_PEER_LABELS: Record<string, string> = {
  socat: "socat -u (8 KiB)",
  "socat-b": "socat -u -b 128K",
  nc: "nc (OpenBSD)",
  python: "original Python",
  iperf3: "iperf3 (memory, ceiling)",
};

function tcpShortLabel(r: TcpBenchRow): string {
  if (r.tool !== "ours") return TCP_PEER_LABELS[r.tool] ?? r.label;
  const buffer = r.buffer === undefined ? "" : ` ${r.buffer >= 1024 ? `${r.buffer / 1024}K` : r.buffer}`;
  // bench/tcp.ts labels compiled binaries older than their sources "(stale)".
  return `${r.runtime}${r.label.includes("(stale)") ? " (stale)" : ""} ${r.mode}${buffer}`;
}

/**
 * The TCP benchmark's report (bench/tcp.ts) as one SVG: median MB/s per tool
 * and the receiver's median peak RSS for the biggest file, and the small
 * image's start-to-finish time per tool.
 */
export function tcpBenchSvg(
  report: { date?: string; rows: TcpBenchRow[]; machine?: { cpuModel?: string } },
): string {
  const rows = report.rows.filter((r) => !r.skipped);
  const through = rows.filter((r) => r.section === "throughput");
  const biggest = Math.max(0, ...through.map((r) => r.sizeMiB));
  const big = through.filter((r) => r.sizeMiB === biggest);
  const small = rows.filter((r) => r.section === "small");
  const rowHeight = 18;
  const width = 1000;
  const top = 58;
  const bigHeight = Math.max(1, big.length) * rowHeight;
  const smallTop = top + bigHeight + 70;
  const smallHeight = Math.max(1, small.length) * rowHeight;
  const height = smallTop + smallHeight + 60;
  const sizeText = biggest >= 1024 && biggest % 1024 === 0 ? `${biggest / 1024} GiB` : `${biggest} MiB`;
  const out: string[] = [
    `<text x="${width / 2}" y="20" font-size="15" text-anchor="middle">${
      escapeXml(`imgxfer TCP on loopback, file to file (median of runs)`)
    }</text>`,
  ];
  const bar = (r: TcpBenchRow, value: number | null | undefined, text?: string): HBar => ({
    label: tcpShortLabel(r),
    value: value ?? undefined,
    color: tcpColor(r),
    opacity: r.mode === "classic" ? 0.55 : undefined,
    text,
  });
  out.push(
    ...hbarsSvg(
      { x: 250, y: top, width: 400, height: bigHeight },
      `Throughput, ${sizeText} (MB/s)`,
      big.map((r) => bar(r, r.summary?.medianMBps)),
      { unit: "MB/s (10^6 bytes/s)", rowHeight },
    ),
  );
  out.push(
    ...hbarsSvg(
      { x: 720, y: top, width: 240, height: bigHeight },
      `Receiver peak RSS, ${sizeText} (MiB)`,
      big.map((r) => bar(r, r.summary?.receiverRssMiB)),
      { unit: "MiB", labels: false, rowHeight, limit: { value: 100, label: "100 MiB" } },
    ),
  );
  out.push(
    ...hbarsSvg(
      { x: 250, y: smallTop, width: 400, height: smallHeight },
      "Small image (input.jpeg), start to finish (ms)",
      small.map((r) => {
        const s = r.summary?.medianSeconds;
        return bar(
          r,
          s === null || s === undefined ? undefined : s * 1000,
          s ? (s * 1000).toFixed(1) : undefined,
        );
      }),
      { unit: "ms (lower is better)", rowHeight },
    ),
  );
  const keys = [
    ["deno", "ours, deno run"],
    ["bun", "ours, bun"],
    ["compiled", "ours, compiled"],
    ["peer", "peers"],
    ["iperf3", "iperf3 (memory)"],
  ];
  keys.forEach(([k, text], i) => {
    const y = smallTop + i * 16;
    out.push(`<rect x="730" y="${y}" width="10" height="10" fill="${TCP_COLORS[k]}"/>`);
    out.push(`<text x="745" y="${y + 9}" font-size="11">${escapeXml(text)}</text>`);
  });
  const y = smallTop + keys.length * 16;
  out.push(`<rect x="730" y="${y}" width="10" height="10" fill="${TCP_COLORS.deno}" fill-opacity="0.55"/>`);
  out.push(`<text x="745" y="${y + 9}" font-size="11">lighter: classic (raw stream)</text>`);
  out.push(footer(height, "bench:tcp", report));
  return svgDocument(width, height, out);
}

/** Stacks whole SVG documents vertically into one (each keeps its own size). */
export function stackSvgs(parts: string[], gap = 12): string {
  let y = 0;
  let width = 0;
  const body: string[] = [];
  for (const part of parts) {
    const open = /<svg\b[^>]*>/.exec(part);
    if (!open) continue;
    const w = Number(/\bwidth="(\d+(?:\.\d+)?)"/.exec(open[0])?.[1] ?? 0);
    const h = Number(/\bheight="(\d+(?:\.\d+)?)"/.exec(open[0])?.[1] ?? 0);
    const inner = part.slice(open.index + open[0].length, part.lastIndexOf("</svg>"));
    body.push(`<g transform="translate(0 ${y})">`, inner, "</g>");
    y += h + gap;
    width = Math.max(width, w);
  }
  return svgDocument(width, Math.max(0, y - gap), body);
}

/** The combined report of bench/all.ts: the TCP chart, the UDP chart, then the loss chart. */
export function benchAllSvg(report: {
  tcp?: Parameters<typeof tcpBenchSvg>[0] | null;
  udp?: Parameters<typeof udpBenchSvg>[0] | null;
  loss?: Parameters<typeof lossBenchSvg>[0] | null;
}): string {
  const parts: string[] = [];
  if (report.tcp?.rows) parts.push(tcpBenchSvg(report.tcp));
  if (report.udp?.rows) parts.push(udpBenchSvg(report.udp));
  if (report.loss?.rows) parts.push(lossBenchSvg(report.loss));
  if (parts.length === 0) {
    parts.push(
      `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="24" font-size="12">` +
        "no benchmark report</text></svg>",
    );
  }
  return stackSvgs(parts);
}

/** `--help` text. */
export const HELP = `Usage: chart [options]

Draws a benchmark's JSON report as an SVG chart. A UDP report (bench:udp):
goodput per tool and payload on loopback, and goodput against loss through
the relay. A TCP report (bench:tcp): throughput and receiver peak RSS per
tool for the biggest file, and the small image's time. A loss report
(bench:loss): goodput against kernel packet loss per tool. The combined
report (bench, results/bench.json): all of them, stacked.

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
  const svg = report?.tool === "bench/tcp.ts"
    ? tcpBenchSvg(report)
    : report?.tool === "bench/loss.ts"
    ? lossBenchSvg(report)
    : report?.tool === "bench/all.ts" || (report && !report.rows && (report.tcp || report.udp || report.loss))
    ? benchAllSvg(report)
    : udpBenchSvg(report);
  fs.writeFileSync(str(flags, "out"), svg);
  if (flags.quiet !== true) console.error(`[*] Chart written to ${str(flags, "out")}`);
  return Promise.resolve(ExitCode.OK);
}

if (import.meta.main) runMain("chart", main);
