/**
 * Exit codes and one-line error descriptions shared by every entry point.
 *
 * Runtime adapters normalise socket errors to Deno's error names
 * (`ConnectionRefused`, `AddrInUse`, …) and file errors keep Node's `code`
 * (`ENOENT`, `EACCES`, …), so this module never needs to know which runtime
 * it runs on.
 *
 * @module
 */

/** Process exit codes, documented in the README and in every `--help`. */
export const ExitCode = {
  /** The transfer completed and, where the protocol allows, was verified. */
  OK: 0,
  /** The transfer ran but did not succeed: incomplete, digest mismatch, refused, or no reply. */
  TRANSFER_FAILED: 1,
  /** A flag or argument is invalid. */
  USAGE: 2,
  /** A local file or folder cannot be read or written. */
  FILE: 3,
  /** A network error: connection refused, address in use, peer vanished, timeout. */
  NETWORK: 4,
  /** Deno refused an operation that its `--allow-*` flags do not grant. */
  PERMISSION: 5,
  /** A bug: something unexpected happened. */
  INTERNAL: 70,
} as const;

/** One of the values of {@linkcode ExitCode}. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

/** An error whose message is already fit for a user, with the exit code it maps to. */
export class CliError extends Error {
  /** The process exit code this error should produce. */
  readonly exitCode: ExitCodeValue;

  /** Creates an error with a user-facing `message` and an `exitCode`. */
  constructor(message: string, exitCode: ExitCodeValue, options?: ErrorOptions) {
    super(message, options);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** Shorthand for a {@linkcode CliError} with {@linkcode ExitCode.USAGE}. */
export function usageError(message: string): CliError {
  return new CliError(message, ExitCode.USAGE);
}

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  path?: unknown;
}

function fields(error: unknown): ErrorLike {
  return typeof error === "object" && error !== null ? error as ErrorLike : {};
}

/** Returns the error's Deno-style name or Node-style code, whichever says more. */
export function errorKind(error: unknown): string {
  const { name, code } = fields(error);
  if (typeof code === "string" && code !== "") return code;
  return typeof name === "string" ? name : "";
}

/**
 * Error codes of a datagram send that lost that datagram but not the path:
 * a firewall rule dropping some packets (`EPERM` from a local netfilter
 * drop), a full queue (`ENOBUFS`, `EAGAIN`), an ICMP error reported for an
 * earlier datagram (`ECONNREFUSED`, `EHOSTUNREACH`, `ENETUNREACH`).
 */
const TRANSIENT_SEND_CODES = new Set([
  "EPERM",
  "ENOBUFS",
  "EAGAIN",
  "EWOULDBLOCK",
  "EINTR",
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/**
 * Whether a failed UDP send should count as a lost datagram (the protocol
 * retransmits it, or the receiver reports it missing) rather than end the
 * transfer. A Deno permission error (`NotCapable`) never does.
 */
export function isTransientSendError(error: unknown): boolean {
  const { code } = fields(error);
  return typeof code === "string" && TRANSIENT_SEND_CODES.has(code);
}

/**
 * Turns a Deno `NotCapable` message into the flag a user has to add.
 *
 * `Requires net access to "127.0.0.1:8082", run again with the --allow-net flag`
 * becomes `--allow-net=127.0.0.1:8082`.
 */
export function permissionFlag(message: string): string {
  const match = /Requires (\w+) access to "([^"]*)"/.exec(message);
  if (!match) {
    const flag = /(--allow-[a-z]+)/.exec(message);
    return flag ? flag[1] : "the matching --allow-* flag";
  }
  return `--allow-${match[1]}=${match[2]}`;
}

/** Whether `error` is a file-system error (Node `code` such as `ENOENT`). */
export function isFileError(error: unknown): boolean {
  return ["ENOENT", "EACCES", "EPERM", "EISDIR", "ENOTDIR", "ENOSPC", "EROFS", "EEXIST", "EMFILE", "EDQUOT"]
    .includes(errorKind(error)) || ["NotFound", "PermissionDenied", "IsADirectory", "AlreadyExists"]
    .includes(errorKind(error));
}

const NETWORK_KINDS: Record<string, string> = {
  ConnectionRefused: "connection refused",
  ECONNREFUSED: "connection refused",
  ConnectionReset: "connection reset by peer",
  ECONNRESET: "connection reset by peer",
  BrokenPipe: "connection closed by peer",
  EPIPE: "connection closed by peer",
  ConnectionAborted: "connection aborted",
  ECONNABORTED: "connection aborted",
  AddrInUse: "address already in use",
  EADDRINUSE: "address already in use",
  AddrNotAvailable: "address not available",
  EADDRNOTAVAIL: "address not available",
  TimedOut: "timed out",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host name not found",
  EAI_NONAME: "host name not found",
  NotConnected: "not connected",
  UnexpectedEof: "connection closed early",
  BadResource: "connection closed",
  Interrupted: "operation interrupted",
  EMSGSIZE: "datagram too large",
};

/** A short phrase for a network error, or `undefined` when `error` is not one. */
export function networkReason(error: unknown): string | undefined {
  const kind = errorKind(error);
  if (kind in NETWORK_KINDS) return NETWORK_KINDS[kind];
  const message = String(fields(error).message ?? "");
  if (/os error 111|refused/i.test(message)) return "connection refused";
  if (/os error 98|address already in use/i.test(message)) return "address already in use";
  if (/os error 104|reset/i.test(message)) return "connection reset by peer";
  if (/os error 32|broken pipe/i.test(message)) return "connection closed by peer";
  if (/failed to lookup address|name or service not known/i.test(message)) return "host name not found";
  return undefined;
}

const FILE_REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  NotFound: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  PermissionDenied: "permission denied",
  EISDIR: "is a directory",
  IsADirectory: "is a directory",
  ENOTDIR: "not a directory",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EEXIST: "already exists",
  AlreadyExists: "already exists",
  EMFILE: "too many open files",
};

/** A short phrase for a file error, or `undefined` when `error` is not one. */
export function fileReason(error: unknown): string | undefined {
  return FILE_REASONS[errorKind(error)];
}

/** A user-facing description of any thrown value, and the exit code for it. */
export interface ErrorReport {
  /** One line, no stack trace. */
  message: string;
  /** The exit code to use. */
  exitCode: ExitCodeValue;
}

/** Describes any thrown value as one line and an exit code. */
export function describeError(error: unknown): ErrorReport {
  if (error instanceof CliError) return { message: error.message, exitCode: error.exitCode };
  const kind = errorKind(error);
  const message = String(fields(error).message ?? error);
  if (kind === "NotCapable") {
    return {
      message: `permission denied by Deno: run again with ${permissionFlag(message)}`,
      exitCode: ExitCode.PERMISSION,
    };
  }
  if (kind === "NotSupported") return { message, exitCode: ExitCode.USAGE };
  const file = fileReason(error);
  if (file) {
    const path = fields(error).path;
    return { message: typeof path === "string" ? `${path}: ${file}` : file, exitCode: ExitCode.FILE };
  }
  const net = networkReason(error);
  if (net) return { message: net, exitCode: ExitCode.NETWORK };
  return { message: `internal error: ${message.split("\n")[0]}`, exitCode: ExitCode.INTERNAL };
}

/**
 * Wraps a low-level error with context ("cannot connect to 127.0.0.1:8081")
 * while keeping the right exit code and a specific reason.
 */
export function withContext(context: string, error: unknown): CliError {
  if (error instanceof CliError) return error;
  const report = describeError(error);
  const reason = report.exitCode === ExitCode.INTERNAL
    ? report.message.replace(/^internal error: /, "")
    : report.message;
  return new CliError(`${context}: ${reason}`, report.exitCode, { cause: error });
}
