/**
 * Command-line helpers shared by the entry points: flag parsing with clear
 * errors, value checks, the Python-style address format of the original
 * output, and `runMain`, which turns any failure into one line on stderr and
 * a documented exit code.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadPsk } from "./auth.ts";
import { DIGEST_NAMES, type DigestName } from "./digest.ts";
import { describeError, ExitCode, usageError } from "./errors.ts";
import { ProgressBar } from "./progress.ts";
import { runtime } from "./runtime.ts";
import { VERSION } from "./version.ts";

/** A flag definition for {@linkcode parseFlags}. */
export interface FlagSpec {
  /** `string` flags take a value, `boolean` flags do not. */
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** Default value. */
  default?: string | boolean;
}

/** Parsed flag values by name. */
export type FlagValues = Record<string, string | boolean | undefined>;

/**
 * Parses `argv` against `spec` (plus `--help`, `--version`, `-q/--quiet` and
 * `--no-color`). Throws a
 * usage {@linkcode CliError} for unknown flags, missing values and
 * positional arguments.
 */
export function parseFlags(argv: string[], spec: Record<string, FlagSpec>): FlagValues {
  const options = {
    ...spec,
    help: { type: "boolean", short: "h" } as FlagSpec,
    version: { type: "boolean", short: "V" } as FlagSpec,
    quiet: { type: "boolean", short: "q" } as FlagSpec,
    "no-color": { type: "boolean" } as FlagSpec,
  };
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return values as FlagValues;
  } catch (error) {
    const full = String((error as Error).message ?? error);
    const hint = /use '(--[\w-]+=-XYZ)'/.exec(full);
    const message = full.split("\n")[0]
      .replace(
        /^Option '([^']+)' argument is ambiguous\.?$/,
        hint ? `a value starting with '-' must be written ${hint[1]}` : "$&",
      )
      .replace(/^Unknown option '([^']+)'.*$/, "unknown option $1")
      .replace(/^Option '([^']+)' argument missing$/, "option $1 needs a value")
      .replace(/^Unexpected argument '([^']+)'.*$/, "unexpected argument '$1'");
    throw usageError(`${message} (see --help)`);
  }
}

/** Reads a string flag that has a default. */
export function str(values: FlagValues, name: string): string {
  const value = values[name];
  if (typeof value !== "string") throw usageError(`--${name} needs a value`);
  return value;
}

function integer(value: string, flag: string): number {
  if (!/^\d+$/.test(value.trim())) throw usageError(`--${flag} must be a whole number, got '${value}'`);
  return Number(value);
}

/** Parses a port; `allowZero` for servers (0 = any free port). */
export function parsePort(value: string, allowZero: boolean): number {
  const port = integer(value, "port");
  const min = allowZero ? 0 : 1;
  if (port < min || port > 65535) throw usageError(`--port must be ${min}-65535, got ${value}`);
  return port;
}

/** Parses a buffer size between 1 and `max`. */
export function parseBuffer(value: string, max: number, why = ""): number {
  const size = integer(value, "buffer");
  if (size < 1 || size > max) throw usageError(`--buffer must be 1-${max}${why}, got ${value}`);
  return size;
}

/**
 * Parses a size in bytes: a whole number, optionally with a binary suffix
 * `K`, `M`, `G` or `T` (`64M` = 64 MiB).
 */
export function parseSize(value: string, flag: string): number {
  const match = /^(\d+)\s*([KMGT]?)i?B?$/i.exec(value.trim());
  if (!match) throw usageError(`--${flag} must be a size like 1000, 64M or 2G, got '${value}'`);
  const power = ["", "K", "M", "G", "T"].indexOf(match[2].toUpperCase());
  const bytes = Number(match[1]) * 1024 ** power;
  if (!Number.isSafeInteger(bytes)) throw usageError(`--${flag} is too large: '${value}'`);
  return bytes;
}

/** Parses a whole number of at least `min`. */
export function parseCount(value: string, flag: string, min = 1): number {
  const n = integer(value, flag);
  if (n < min) throw usageError(`--${flag} must be at least ${min}, got ${value}`);
  return n;
}

/** Parses a positive number of seconds into milliseconds. */
export function parseSeconds(value: string, flag: string): number {
  const seconds = Number(value);
  if (value.trim() === "" || !Number.isFinite(seconds) || seconds <= 0) {
    throw usageError(`--${flag} must be a positive number of seconds, got '${value}'`);
  }
  return seconds * 1000;
}

/** Parses `--digest NAME`: one of {@linkcode DIGEST_NAMES}. */
export function parseDigest(value: string): DigestName {
  const name = DIGEST_NAMES.find((n) => n === value.trim().toLowerCase());
  if (!name) throw usageError(`--digest must be ${DIGEST_NAMES.join(" or ")}, got '${value}'`);
  return name;
}

/** Parses `--keep-partials DAYS` (a positive number, fractions allowed) into milliseconds. */
export function parseDays(value: string, flag: string): number {
  const days = Number(value);
  if (value.trim() === "" || !Number.isFinite(days) || days <= 0) {
    throw usageError(`--${flag} must be a positive number of days, got '${value}'`);
  }
  return days * 86_400_000;
}

/** `--help` line of `--keep-partials`. */
export const KEEP_PARTIALS_HELP =
  `  --keep-partials DAYS  delete resumable partials (.NAME.<id>.resume.part in
                        --out) nobody resumed within DAYS, at start and
                        hourly (default 7)`;

/** Formats an address like Python's tuple repr in the original output: `('127.0.0.1', 42662)`. */
export function pythonAddr(hostPort: string): string {
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(hostPort);
  return match ? `('${match[1].replace(/^::ffff:/, "")}', ${match[2]})` : hostPort;
}

/** How an entry point should print. */
export interface OutputOptions {
  /** One JSON object per line on stdout instead of human text. */
  json?: boolean;
  /** No progress lines or bars: only results, warnings and errors. */
  quiet?: boolean;
  /** ANSI colour on the human lines. */
  color?: boolean;
  /** Progress bars on stderr. */
  progress?: boolean;
}

const ANSI = { green: "32", red: "31", yellow: "33", cyan: "36", bold: "1", dim: "2" } as const;

/**
 * Where an entry point writes. Results (a client's summary block, a server's
 * saved files) go to stdout; logs (the `[*]` lines), progress bars and
 * warnings go to stderr. `--json` turns stdout into JSON lines and silences
 * logs; `-q/--quiet` silences logs and bars. Colour only on a terminal, and
 * never with `NO_COLOR` or `--no-color`.
 */
export class Output {
  /** Whether `--json` was given. */
  readonly json: boolean;
  /** Whether `-q/--quiet` was given. */
  readonly quiet: boolean;
  /** Whether lines are coloured. */
  readonly color: boolean;
  #progress: boolean;
  #bars = new Map<string, ProgressBar>();

  /** Creates an output; see {@linkcode Output.fromFlags} for the usual way. */
  constructor(options: OutputOptions = {}) {
    this.json = options.json ?? false;
    this.quiet = options.quiet ?? false;
    this.color = options.color ?? false;
    this.#progress = (options.progress ?? false) && !this.json && !this.quiet;
  }

  /** The output for parsed flags: `--json`, `-q/--quiet`, `--no-color`, and whether stderr is a terminal. */
  static fromFlags(flags: FlagValues): Output {
    const terminal = runtime.isTerminal("stderr");
    return new Output({
      json: flags.json === true,
      quiet: flags.quiet === true,
      color: terminal && flags["no-color"] !== true && !runtime.noColor,
      progress: terminal,
    });
  }

  /** Wraps `text` in an ANSI style when colour is on. */
  paint(style: keyof typeof ANSI, text: string): string {
    return this.color ? `\x1b[${ANSI[style]}m${text}\x1b[0m` : text;
  }

  #clearBars(): void {
    for (const bar of this.#bars.values()) bar.finish();
  }

  /** A log line on stderr (the original's `[*] …` lines); silent with `--json` or `--quiet`. */
  log(text: string): void {
    if (this.json || this.quiet) return;
    this.#clearBars();
    console.error(text.replace(/^\[\*\]/, this.paint("cyan", "[*]")));
  }

  /** A result line on stdout (summary blocks, saved files); silent with `--json`. */
  result(text: string): void {
    if (this.json) return;
    this.#clearBars();
    console.log(text);
  }

  /** A JSON object on stdout (JSON mode only). */
  record(value: Record<string, unknown>): void {
    if (this.json) console.log(JSON.stringify(value));
  }

  /** A warning on stderr, in every mode. */
  warn(text: string): void {
    this.#clearBars();
    console.error(`${this.paint("yellow", "[!]")} ${text}`);
  }

  /** Updates the progress bar `key` (shown on a terminal for transfers longer than a second). */
  progress(key: string, label: string, bytes: number, total?: number): void {
    if (!this.#progress) return;
    let bar = this.#bars.get(key);
    if (!bar) {
      bar = new ProgressBar(
        {
          write: (text) => process.stderr.write(text),
          columns: process.stderr.columns,
        },
        label,
        performance.now(),
      );
      this.#bars.set(key, bar);
    }
    bar.update(performance.now(), bytes, total);
  }

  /** Removes the progress bar `key`. */
  endProgress(key: string): void {
    this.#bars.get(key)?.finish();
    this.#bars.delete(key);
  }
}

/** Prints `name version (runtime)` for `--version`. */
export function versionLine(name: string, runtimeName: string, runtimeVersion: string): string {
  return `${name} ${VERSION} (${runtimeName} ${runtimeVersion})`;
}

/**
 * Runs an entry point's `main`: its resolved number is the exit code; any
 * thrown value becomes `error: <one line>` on stderr with its exit code.
 * Unhandled rejections are caught the same way, so no stack trace escapes.
 */
export async function runMain(name: string, main: (argv: string[]) => Promise<number>): Promise<never> {
  const fail = (error: unknown): never => {
    const report = describeError(error);
    console.error(`${name}: error: ${report.message}`);
    process.exit(report.exitCode);
  };
  process.on("unhandledRejection", (reason: unknown) => fail(reason));
  let code: number;
  try {
    code = await main(process.argv.slice(2));
  } catch (error) {
    return fail(error);
  }
  process.exit(code);
}

/** Re-exported for entry points' documentation of exit codes. */
export { ExitCode };

/** The options every entry point accepts, for `--help`. */
export const COMMON_FLAGS_HELP = `  -q, --quiet           no progress lines or bars (results and errors only)
  --no-color            no colour (also: NO_COLOR=1; colour is only used on a terminal)
  -h, --help            show this help
  -V, --version         show the version`;

/** The exit-code table every `--help` ends with. */
export const EXIT_CODES_HELP = `Exit codes:
  0  success (transfer complete and, where the protocol allows, verified)
  1  transfer failed: incomplete, digest mismatch, refused, or no reply
  2  bad flag or value
  3  a local file or folder cannot be read or written
  4  network error: connection refused, address in use, peer vanished, timeout
  5  Deno permission missing (the message names the --allow-* flag to add)
  70 internal error (a bug: please report it)`;

/** The key flags every server and reliable client accepts, for {@linkcode parseFlags}. */
export const PSK_FLAGS: Record<string, FlagSpec> = {
  psk: { type: "string" },
  "psk-file": { type: "string" },
};

/** `--help` lines of {@linkcode PSK_FLAGS}. */
export const PSK_FLAGS_HELP = `  --psk SECRET          pre-shared key: both ends must hold it (visible in the
                        process list: prefer --psk-file or IMGXFER_PSK)
  --psk-file PATH       read the key from PATH (trailing newline ignored)
                        (also: IMGXFER_PSK=SECRET in the environment)`;

/**
 * The pre-shared key from parsed {@linkcode PSK_FLAGS} or the `IMGXFER_PSK`
 * variable, or `undefined` for none. Throws a usage error for a bad key.
 */
export function pskFromFlags(flags: FlagValues): Uint8Array | undefined {
  return loadPsk({
    psk: typeof flags.psk === "string" ? flags.psk : undefined,
    pskFile: typeof flags["psk-file"] === "string" ? flags["psk-file"] : undefined,
  });
}

/** Flags both servers take, with the given `--idle-timeout` default in seconds. */
export function serverFlags(idleTimeoutDefault: string): Record<string, FlagSpec> {
  return {
    out: { type: "string", default: "." },
    once: { type: "boolean", default: false },
    "idle-timeout": { type: "string", default: idleTimeoutDefault },
    "max-size": { type: "string" },
    "max-clients": { type: "string", default: "256" },
    "shutdown-grace": { type: "string", default: "5" },
    "keep-partials": { type: "string", default: "7" },
    overwrite: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    ...PSK_FLAGS,
  };
}

/** `--help` lines of the {@linkcode serverFlags} both servers describe alike. */
export const SERVER_FLAGS_HELP =
  `  --max-size SIZE       refuse files larger than SIZE (e.g. 64M, 2G): a framed
                        or reliable sender is refused before a byte is written,
                        a classic stream is cut off (default: no limit)
  --max-clients N       transfers served at once; more are refused (default 256)
  --shutdown-grace SECS on SIGINT/SIGTERM, let transfers in progress finish for
                        this long, then stop (default 5; a second signal stops now)
  --json                one JSON object per line on stdout
${PSK_FLAGS_HELP}
${KEEP_PARTIALS_HELP}
  --overwrite           replace an existing file of the same name (default:
                        never overwrite; save as NAME_1, NAME_2, …)`;

/** The values of parsed {@linkcode serverFlags}, checked. */
export interface ServerFlagValues {
  outDir: string;
  once: boolean;
  idleTimeoutMs: number;
  maxBytes: number | undefined;
  maxClients: number;
  shutdownGraceMs: number;
  keepPartialsMs: number;
  overwrite: boolean;
  psk: Uint8Array | undefined;
}

/** Checks and converts the values of {@linkcode serverFlags}; throws a usage error for a bad one. */
export function serverFlagValues(flags: FlagValues): ServerFlagValues {
  return {
    outDir: str(flags, "out"),
    once: flags.once === true,
    idleTimeoutMs: parseSeconds(str(flags, "idle-timeout"), "idle-timeout"),
    maxBytes: typeof flags["max-size"] === "string" ? parseSize(flags["max-size"], "max-size") : undefined,
    maxClients: parseCount(str(flags, "max-clients"), "max-clients"),
    shutdownGraceMs: parseSeconds(str(flags, "shutdown-grace"), "shutdown-grace"),
    keepPartialsMs: parseDays(str(flags, "keep-partials"), "keep-partials"),
    overwrite: flags.overwrite === true,
    psk: pskFromFlags(flags),
  };
}
