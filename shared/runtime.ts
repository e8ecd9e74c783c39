/**
 * The runtime adapter: the only module that asks "am I on Deno or on Bun?".
 *
 * It gives both runtimes the shapes of `Deno.listen`, `Deno.connect` and
 * `Deno.listenDatagram`. On Deno those are the native objects. On Bun they
 * are thin wrappers around `Bun.listen`, `Bun.connect` and `Bun.udpSocket`
 * that keep Deno's semantics:
 *
 * - `write()` may write part of the buffer and returns how much it wrote
 *   (Bun's `socket.write` does the same, but does not buffer the rest: we
 *   wait for `drain` and let the caller retry);
 * - `closeWrite()` is a half-close (`socket.shutdown()`; Bun's `end()` is a
 *   full close) and sockets are opened with `allowHalfOpen` so a server can
 *   reply after the client's FIN;
 * - `read()` returns `null` at EOF; received data is queued and the socket
 *   paused above a high-water mark, so memory stays bounded;
 * - errors carry Deno's names (`ConnectionRefused`, `AddrInUse`, …).
 *
 * On both, `sendMany` skips a datagram the kernel refuses for a passing
 * reason (a firewall dropping some packets, a full queue: see
 * `isTransientSendError`) and goes on with the rest, like a network that
 * loses it.
 *
 * @module
 */

import { isTransientSendError } from "./errors.ts";

/** A network address, as Deno reports it. */
export interface NetAddr {
  /** `"tcp"` or `"udp"`. */
  transport: "tcp" | "udp";
  /** An IP address or host name. */
  hostname: string;
  /** The port number. */
  port: number;
}

/** A TCP connection with the subset of `Deno.TcpConn` this project uses. */
export interface Conn {
  /** This end's address. */
  readonly localAddr: NetAddr;
  /** The peer's address. */
  readonly remoteAddr: NetAddr;
  /** Reads up to `p.length` bytes into `p`; resolves to the count, or `null` at EOF. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p` (maybe not all) and resolves to the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
  /** Half-closes: the peer sees EOF, and this end can still read its reply. */
  closeWrite(): Promise<void>;
  /** Closes the connection in both directions. */
  close(): void;
}

/** A TCP listener with the subset of `Deno.Listener` this project uses. */
export interface Listener extends AsyncIterable<Conn> {
  /** The bound address (with the real port when 0 was asked for). */
  readonly addr: NetAddr;
  /** Waits for the next connection. Rejects once the listener is closed. */
  accept(): Promise<Conn>;
  /** Stops listening. */
  close(): void;
}

/** A UDP socket with the subset of `Deno.DatagramConn` this project uses. */
export interface DatagramConn {
  /** The bound address. */
  readonly addr: NetAddr;
  /** Sends one datagram. Await it before sending the next (Deno reverses unawaited sends). */
  send(p: Uint8Array, addr: NetAddr): Promise<number>;
  /**
   * Sends several datagrams to one address, in order: one system call per
   * batch on Bun (`sendMany`), awaited sends one by one on Deno. The buffers
   * may be reused once the promise resolves. Resolves to the number sent: a
   * datagram refused for a passing reason is skipped (lost, as on a lossy
   * link), any other error rejects.
   */
  sendMany(datagrams: Uint8Array[], addr: NetAddr): Promise<number>;
  /**
   * Receives one datagram. With `p`, the result may be a view into `p`,
   * overwritten by the next call: copy what you keep. Rejects with an error
   * named `Interrupted` or `BadResource` once the socket is closed.
   */
  receive(p?: Uint8Array): Promise<[Uint8Array, NetAddr]>;
  /**
   * Receives every datagram already waiting (at least one): on Bun the whole
   * queue at once, on Deno one datagram. The datagrams stay valid until the
   * next receive call. Rejects like {@linkcode receive} once closed.
   */
  receiveBatch(): Promise<Array<[Uint8Array, NetAddr]>>;
  /** Closes the socket; a pending `receive()` rejects. */
  close(): void;
}

/** Options for {@linkcode Runtime.listen} and {@linkcode Runtime.connect}. */
export interface TcpOptions {
  /** Address to bind or connect to. */
  hostname: string;
  /** Port; 0 lets the system choose when listening. */
  port: number;
}

/** The network surface of a runtime. */
export interface Runtime {
  /** `"deno"` or `"bun"`. */
  readonly name: "deno" | "bun";
  /** The runtime's version string. */
  readonly version: string;
  /** Like `Deno.listen({ transport: "tcp" })`. */
  listen(options: TcpOptions): Listener;
  /** Like `Deno.connect({ transport: "tcp" })`. */
  connect(options: TcpOptions): Promise<Conn>;
  /** Like `Deno.listenDatagram({ transport: "udp" })`; async because Bun's is. */
  listenDatagram(options: TcpOptions): Promise<DatagramConn>;
  /** Calls `handler` on SIGINT or SIGTERM; returns a function that removes it. */
  onShutdownSignal(handler: (signal: string) => void): () => void;
  /**
   * Waits about `ms` (which may be under a millisecond) and lets pending
   * socket I/O run: a kernel sleep (`Atomics.wait`, precise, no spinning),
   * then a turn of the event loop. On Bun `setImmediate` polls I/O. On Deno a
   * chain of `setImmediate` can starve socket reads for tens of milliseconds
   * (measured: 39 ms), so at least every 8 ms the turn is a 0 ms timer, which
   * does poll (and costs about a millisecond).
   */
  pause(ms: number): Promise<void>;
  /** Whether the user asked for no colour (`NO_COLOR`); needs no permission on Deno. */
  readonly noColor: boolean;
  /**
   * An environment variable, or `undefined` when it is unset or (on Deno)
   * not readable without `--allow-env=NAME`.
   */
  env(name: string): string | undefined;
  /** Whether standard output or standard error is a terminal. */
  isTerminal(stream: "stdout" | "stderr"): boolean;
}

/** A word nobody notifies: `Atomics.wait` on it is a plain sleep. */
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** Creates an `Error` with a Deno-style `name`, so callers can match on names only. */
function namedError(name: string, message: string, cause?: unknown): Error {
  const error = new Error(message, cause === undefined ? undefined : { cause });
  error.name = name;
  return error;
}

const BUN_CODES: Record<string, string> = {
  ECONNREFUSED: "ConnectionRefused",
  EADDRINUSE: "AddrInUse",
  ECONNRESET: "ConnectionReset",
  EPIPE: "BrokenPipe",
  EADDRNOTAVAIL: "AddrNotAvailable",
  ETIMEDOUT: "TimedOut",
  EACCES: "PermissionDenied",
  ENOTFOUND: "ENOTFOUND",
};

/** Gives a Bun/Node error Deno's name for the same condition. */
function normaliseBunError(error: unknown): Error {
  if (!(error instanceof Error)) return namedError("Error", String(error));
  const code = (error as { code?: string }).code ?? "";
  let name = BUN_CODES[code];
  if (!name) {
    if (/refused|failed to connect/i.test(error.message)) name = "ConnectionRefused";
    else if (/in use/i.test(error.message)) name = "AddrInUse";
    else return error;
  }
  return namedError(name, error.message, error);
}

/** True when `hostname` is an IPv4 or IPv6 literal. */
export function isIpLiteral(hostname: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname) ||
    (hostname.includes(":") && /^[0-9a-fA-F:.]+$/.test(hostname));
}

// ---------------------------------------------------------------- Deno ----

// deno-lint-ignore no-explicit-any
type AnyDeno = any;

function denoRuntime(deno: AnyDeno): Runtime {
  let lastPoll = 0;
  return {
    name: "deno",
    version: deno.version.deno,
    listen: (o) => deno.listen({ transport: "tcp", hostname: o.hostname, port: o.port }),
    connect: (o) => deno.connect({ transport: "tcp", hostname: o.hostname, port: o.port }),
    listenDatagram: (o) => {
      if (typeof deno.listenDatagram !== "function") {
        return Promise.reject(
          namedError(
            "NotCapable",
            "UDP needs Deno's unstable net API: run with --unstable-net (deno.json sets it)",
          ),
        );
      }
      try {
        const conn = deno.listenDatagram({ transport: "udp", hostname: o.hostname, port: o.port });
        const batchBuffer = new Uint8Array(65536);
        const wrapped: DatagramConn = {
          get addr() {
            return conn.addr;
          },
          send: (p, addr) => conn.send(p, addr),
          async sendMany(datagrams, addr) {
            let sent = 0;
            for (const d of datagrams) {
              try {
                await conn.send(d, addr);
                sent++;
              } catch (error) {
                if (!isTransientSendError(error)) throw error;
              }
            }
            return sent;
          },
          receive: (p) => conn.receive(p),
          async receiveBatch() {
            return [await conn.receive(batchBuffer)];
          },
          close: () => conn.close(),
        };
        return Promise.resolve(wrapped);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    noColor: Boolean(deno.noColor),
    env(name) {
      try {
        return deno.env.get(name);
      } catch {
        return undefined; // no --allow-env for this variable
      }
    },
    isTerminal: (stream) => (stream === "stdout" ? deno.stdout : deno.stderr).isTerminal(),
    pause(ms) {
      if (ms > 0) Atomics.wait(SLEEPER, 0, 0, ms);
      const now = performance.now();
      if (now - lastPoll >= 8) {
        lastPoll = now;
        return new Promise((resolve) => setTimeout(resolve, 0));
      }
      return new Promise((resolve) => setImmediate(resolve));
    },
    onShutdownSignal(handler) {
      const onInt = () => handler("SIGINT");
      const onTerm = () => handler("SIGTERM");
      deno.addSignalListener("SIGINT", onInt);
      deno.addSignalListener("SIGTERM", onTerm);
      return () => {
        deno.removeSignalListener("SIGINT", onInt);
        deno.removeSignalListener("SIGTERM", onTerm);
      };
    },
  };
}

// ----------------------------------------------------------------- Bun ----

// deno-lint-ignore no-explicit-any
type BunSocket = any;
// deno-lint-ignore no-explicit-any
type AnyBun = any;

/** Bytes queued per Bun connection before the socket is paused. */
const BUN_READ_HIGH_WATER = 1 << 20;

/** A `Conn` over a Bun TCP socket. Handlers call the `on*` methods. */
class BunConn implements Conn {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  #socket: BunSocket;
  #chunks: Uint8Array[] = [];
  #offset = 0;
  #buffered = 0;
  #paused = false;
  #eof = false;
  #closed = false;
  #error: Error | undefined;
  #wakeReader: (() => void) | undefined;
  #wakeWriter: (() => void) | undefined;

  constructor(socket: BunSocket, local: NetAddr, remote: NetAddr) {
    this.#socket = socket;
    this.localAddr = local;
    this.remoteAddr = remote;
  }

  onData(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (!this.#paused && this.#buffered >= BUN_READ_HIGH_WATER) {
      this.#paused = true;
      this.#socket.pause();
    }
    this.#wake();
  }

  onEnd(): void {
    this.#eof = true;
    this.#wake();
  }

  onClose(error?: unknown): void {
    this.#closed = true;
    this.#eof = true;
    if (error && !this.#error) this.#error = normaliseBunError(error);
    this.#wake();
  }

  onError(error: unknown): void {
    this.#error ??= normaliseBunError(error);
    this.#wake();
  }

  onDrain(): void {
    this.#wake();
  }

  #wake(): void {
    const reader = this.#wakeReader;
    const writer = this.#wakeWriter;
    this.#wakeReader = undefined;
    this.#wakeWriter = undefined;
    reader?.();
    writer?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#buffered === 0) {
      if (this.#error && this.#error.name !== "BrokenPipe") throw this.#error;
      if (this.#eof) return null;
      await new Promise<void>((resolve) => this.#wakeReader = resolve);
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const head = this.#chunks[0];
      const take = Math.min(p.length - n, head.length - this.#offset);
      p.set(head.subarray(this.#offset, this.#offset + take), n);
      n += take;
      this.#offset += take;
      if (this.#offset === head.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.#buffered -= n;
    if (this.#paused && this.#buffered < BUN_READ_HIGH_WATER / 2) {
      this.#paused = false;
      this.#socket.resume();
    }
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    if (p.length === 0) return 0;
    for (;;) {
      if (this.#error) throw this.#error;
      if (this.#closed) throw namedError("BrokenPipe", "connection closed by peer");
      const n: number = this.#socket.write(p);
      if (n > 0) return n;
      if (n < 0) throw namedError("BrokenPipe", "connection closed by peer");
      await new Promise<void>((resolve) => this.#wakeWriter = resolve);
    }
  }

  closeWrite(): Promise<void> {
    if (!this.#closed) this.#socket.shutdown();
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#eof = true;
    this.#socket.end();
    this.#wake();
  }
}

/** Socket handlers shared by Bun's listener and connector: they route events to the `BunConn`. */
function bunHandlers(onOpen: (socket: BunSocket) => void, onConnectError?: (error: unknown) => void) {
  return {
    binaryType: "uint8array",
    open: onOpen,
    data: (s: BunSocket, chunk: Uint8Array) => (s.data as BunConn | undefined)?.onData(chunk),
    drain: (s: BunSocket) => (s.data as BunConn | undefined)?.onDrain(),
    end: (s: BunSocket) => (s.data as BunConn | undefined)?.onEnd(),
    close: (s: BunSocket, error?: unknown) => (s.data as BunConn | undefined)?.onClose(error),
    error: (s: BunSocket, error: unknown) => (s.data as BunConn | undefined)?.onError(error),
    connectError: (_s: BunSocket, error: unknown) => onConnectError?.(error),
  };
}

/** An unbounded-by-design hand-off queue: producers push, one consumer awaits. */
class AsyncQueue<T> {
  #items: T[] = [];
  #head = 0;
  #waiters: { resolve: (v: T[]) => void; reject: (e: Error) => void; all: boolean }[] = [];
  #closedError: Error | undefined;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve([item]);
      return;
    }
    this.#items.push(item);
  }

  #take(all: boolean): T[] {
    if (all) {
      const items = this.#head === 0 ? this.#items : this.#items.slice(this.#head);
      this.#items = [];
      this.#head = 0;
      return items;
    }
    const item = this.#items[this.#head++];
    // Compact now and then instead of Array.shift (which is O(n) per call).
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return [item];
  }

  #wait(all: boolean): Promise<T[]> {
    if (this.length > 0) return Promise.resolve(this.#take(all));
    if (this.#closedError) return Promise.reject(this.#closedError);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject, all }));
  }

  /** The next item. */
  async shift(): Promise<T> {
    return (await this.#wait(false))[0];
  }

  /** Everything queued (at least one item). */
  takeAll(): Promise<T[]> {
    return this.#wait(true);
  }

  close(error: Error): void {
    this.#closedError = error;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }
}

function bunListen(bun: AnyBun, o: TcpOptions): Listener {
  const pending = new AsyncQueue<Conn>();
  let server: BunSocket;
  try {
    server = bun.listen({
      hostname: o.hostname,
      port: o.port,
      allowHalfOpen: true,
      socket: bunHandlers((socket) => {
        const conn = new BunConn(
          socket,
          { transport: "tcp", hostname: o.hostname, port: server?.port ?? o.port },
          { transport: "tcp", hostname: socket.remoteAddress, port: socket.remotePort ?? 0 },
        );
        socket.data = conn;
        pending.push(conn);
      }),
    });
  } catch (error) {
    throw normaliseBunError(error);
  }
  const addr: NetAddr = { transport: "tcp", hostname: o.hostname, port: server.port };
  const listener: Listener = {
    addr,
    accept: () => pending.shift(),
    close() {
      server.stop(false);
      pending.close(namedError("BadResource", "listener closed"));
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        try {
          yield await pending.shift();
        } catch {
          return;
        }
      }
    },
  };
  return listener;
}

async function bunConnect(bun: AnyBun, o: TcpOptions): Promise<Conn> {
  let connectError: unknown;
  try {
    const socket = await bun.connect({
      hostname: o.hostname,
      port: o.port,
      allowHalfOpen: true,
      socket: bunHandlers(
        (socket) => {
          socket.data = new BunConn(
            socket,
            { transport: "tcp", hostname: socket.localAddress ?? "", port: socket.localPort ?? 0 },
            { transport: "tcp", hostname: o.hostname, port: o.port },
          );
        },
        (error) => connectError = error,
      ),
    });
    return socket.data as BunConn;
  } catch (error) {
    throw normaliseBunError(connectError ?? error);
  }
}

/** Datagrams queued per Bun UDP socket before new ones are dropped, like a kernel buffer. */
const BUN_UDP_QUEUE_LIMIT = 8192;
/** Kernel socket buffer asked for on Bun (capped by net.core.rmem_max / wmem_max). */
const BUN_UDP_SOCKET_BUFFER = 4 << 20;

/**
 * Enlarges a Bun UDP socket's kernel buffers with setsockopt through bun:ffi
 * (Bun has no option for it; Deno has no way at all). Best effort: any
 * failure leaves the defaults.
 */
async function enlargeSocketBuffers(fd: unknown): Promise<void> {
  if (typeof fd !== "number") return;
  try {
    const ffiModule = "bun:ffi"; // a variable, so Deno's type checker does not try to resolve it
    // deno-lint-ignore no-explicit-any
    const ffi: any = await import(ffiModule);
    const libc = ffi.dlopen("libc.so.6", {
      setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
    });
    const size = new Int32Array([BUN_UDP_SOCKET_BUFFER]);
    const SOL_SOCKET = 1, SO_SNDBUF = 7, SO_RCVBUF = 8;
    libc.symbols.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, ffi.ptr(size), 4);
    libc.symbols.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, ffi.ptr(size), 4);
    libc.close();
  } catch { /* not Linux/glibc, or ffi unavailable: keep the defaults */ }
}

async function bunListenDatagram(bun: AnyBun, o: TcpOptions): Promise<DatagramConn> {
  const queue = new AsyncQueue<[Uint8Array, NetAddr]>();
  let socket: BunSocket;
  try {
    socket = await bun.udpSocket({
      hostname: o.hostname,
      port: o.port,
      binaryType: "uint8array",
      socket: {
        data(_s: BunSocket, data: Uint8Array, port: number, address: string) {
          if (queue.length < BUN_UDP_QUEUE_LIMIT) {
            queue.push([data, { transport: "udp", hostname: address, port }]);
          }
        },
        // Bun calls this with one argument. ICMP "port unreachable" arrives
        // here as ECONNREFUSED; like Deno, we ignore it (UDP has no connection).
        error(_error: unknown) {},
      },
    });
  } catch (error) {
    throw normaliseBunError(error);
  }
  await enlargeSocketBuffers(socket.fd);
  return {
    addr: { transport: "udp", hostname: o.hostname, port: socket.port },
    send(p, addr) {
      try {
        socket.send(p, addr.port, addr.hostname);
        return Promise.resolve(p.length);
      } catch (error) {
        // An ICMP "port unreachable" for an earlier datagram surfaces here as
        // ECONNREFUSED; Deno ignores it, and so do we (UDP has no connection).
        const normalised = normaliseBunError(error);
        if (normalised.name === "ConnectionRefused") return Promise.resolve(p.length);
        return Promise.reject(normalised);
      }
    },
    sendMany(datagrams, addr) {
      // Bun's sendMany (sendmmsg) stops at the first datagram the kernel
      // refuses: it returns how many went before it, or throws when it was
      // the first. Skip that one and send the rest.
      let sent = 0;
      for (let from = 0; from < datagrams.length;) {
        const args: unknown[] = [];
        for (let i = from; i < datagrams.length; i++) args.push(datagrams[i], addr.port, addr.hostname);
        let n: number;
        try {
          n = socket.sendMany(args);
        } catch (error) {
          const normalised = normaliseBunError(error);
          // ECONNREFUSED: an ICMP "port unreachable" for an earlier datagram, not this one.
          if (normalised.name === "ConnectionRefused") return Promise.resolve(sent + datagrams.length - from);
          if (!isTransientSendError(error)) return Promise.reject(normalised);
          n = 0;
        }
        sent += n;
        from += n + 1; // past the refused one (or past the end when all went)
      }
      return Promise.resolve(sent);
    },
    receiveBatch: () => queue.takeAll(),
    async receive(p) {
      const [data, addr] = await queue.shift();
      if (!p) return [data, addr];
      const n = Math.min(p.length, data.length);
      p.set(data.subarray(0, n));
      return [p.subarray(0, n), addr];
    },
    close() {
      socket.close();
      queue.close(namedError("Interrupted", "socket closed"));
    },
  };
}

function bunRuntime(bun: AnyBun): Runtime {
  return {
    name: "bun",
    version: bun.version,
    listen: (o) => bunListen(bun, o),
    connect: (o) => bunConnect(bun, o),
    listenDatagram: (o) => bunListenDatagram(bun, o),
    noColor: Boolean(process.env.NO_COLOR),
    env: (name) => process.env[name],
    isTerminal: (stream) => Boolean((stream === "stdout" ? process.stdout : process.stderr).isTTY),
    pause(ms) {
      if (ms > 0) Atomics.wait(SLEEPER, 0, 0, ms);
      return new Promise((resolve) => setImmediate(resolve));
    },
    onShutdownSignal(handler) {
      const onInt = () => handler("SIGINT");
      const onTerm = () => handler("SIGTERM");
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
      return () => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
      };
    },
  };
}

/** Picks the adapter for the runtime this code runs on. */
function detect(): Runtime {
  const g = globalThis as AnyDeno;
  if (g.Deno?.listen) return denoRuntime(g.Deno);
  if (g.Bun?.listen) return bunRuntime(g.Bun);
  throw new Error("imgxfer runs on Deno or Bun; this runtime is neither");
}

/** The adapter for the current runtime. Immutable; created once at import. */
export const runtime: Runtime = detect();
