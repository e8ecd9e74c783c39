/**
 * The Deno sandbox around the servers: `tcp/server.ts` and `udp/server.ts`
 * run with exactly the permissions of their deno tasks (README,
 * "Permissions"), adapted to a temporary `--out` folder and a port, and
 * cannot read or write outside them:
 *
 * - a normal transfer works;
 * - `--out` set to a folder not granted fails at start: exit 5 and one line
 *   naming `--allow-write=` that folder;
 * - a client allowed to read one file cannot send another: exit 5, naming
 *   `--allow-read=` the other file;
 * - a sender naming its file `../../escape.txt` gets it saved inside `--out`
 *   under its sanitized base name, and nothing changes outside `--out`.
 *
 * The tests spawn `deno` processes, so they run under `deno test` and under
 * `bun test` alike.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { FramedStatus } from "../shared/protocol.ts";
import { MsgType, ReliableStatus } from "../shared/protocol_reliable.ts";
import {
  lastJson,
  listDir,
  makeFile,
  runEntry,
  runtimeNamed,
  SAMPLE,
  sendFramedByHand,
  sendReliableByHand,
  type ServerProcess,
  sha256File,
  startServer,
  tempDir,
} from "./helpers.ts";

const deno = runtimeNamed("deno");

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * A sandbox layout: `base/parent/out` is the granted `--out`; `base` and
 * `base/parent` hold a file each, to show they stay untouched. A sender's
 * `../../escape.txt` resolved against `out` would land in `base`.
 */
interface Layout {
  base: string;
  parent: string;
  out: string;
}

function layout(): Layout {
  const base = tempDir("imgxfer-sandbox-");
  dirs.push(base);
  const parent = join(base, "parent");
  const out = join(parent, "out");
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(join(base, "keep-base.txt"), "base\n");
  fs.writeFileSync(join(parent, "keep-parent.txt"), "parent\n");
  return { base, parent, out };
}

/** Every file and folder under `dir` except `skip`, with sizes and mtimes: what "unchanged" means here. */
function snapshot(dir: string, skip: string): string[] {
  const entries: string[] = [];
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const path = join(d, name);
      if (path === skip) continue;
      const st = fs.statSync(path);
      entries.push(`${path} ${st.isDirectory() ? "dir" : st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return entries;
}

/** A TCP port on 127.0.0.1 with nothing listening (bound, then released). */
function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Asserts exactly one error line on stderr (the last), with no stack trace; returns it. */
function errorLine(stderr: string, prog: string): string {
  assert.ok(!stderr.includes("    at "), `stack trace on stderr:\n${stderr}`);
  assert.ok(!/Uncaught/.test(stderr), `uncaught error on stderr:\n${stderr}`);
  const lines = stderr.trim().split(/\r?\n/);
  const errors = lines.filter((l) => /\berror:/.test(l));
  assert.equal(errors.length, 1, `expected one error line on stderr:\n${stderr}`);
  assert.equal(lines[lines.length - 1], errors[0], `the error line is not the last:\n${stderr}`);
  assert.ok(errors[0].startsWith(`${prog}: error:`), errors[0]);
  return errors[0];
}

/** Asserts that `line` names the flag `--allow-KIND=PATH` (as a whole item of a comma-separated list). */
function assertNamesFlag(line: string, kind: "read" | "write", path: string): void {
  const flags = [...line.matchAll(new RegExp(`--allow-${kind}=([^\\s]+)`, "g"))]
    .flatMap((m) => m[1].replace(/[.'"]+$/, "").split(","));
  assert.ok(flags.includes(path), `'${line}' does not name --allow-${kind}=${path}`);
}

const ESCAPE_NAME = "../../escape.txt";
const ESCAPE_BODY = new TextEncoder().encode("this file tries to leave --out\n");

interface ServerCase {
  script: "tcp/server.ts" | "udp/server.ts";
  client: "tcp/client.ts" | "udp/client.ts";
  prog: string;
  /** Port to use (TCP: fixed, because the task's --allow-net names it; UDP: any). */
  port(): Promise<number>;
  /** The deno task's permissions, adapted to `out` and `port` (`commandFor` adds `--no-prompt`). */
  serverPermissions(out: string, port: number): string[];
  /** The client task's permissions, adapted to the file and port. */
  clientPermissions(file: string, port: number): string[];
  /** What the task grants, for the test names. */
  task: string;
  /** What the server saves a transfer of `input.jpeg` as. */
  received: string;
  /** What it saves `escape.txt` as. */
  escaped: string;
  /** Sends a file named `name` by hand; resolves once the server confirmed it. */
  sendNamed(port: number, name: string, body: Uint8Array): Promise<void>;
}

const CASES: ServerCase[] = [
  {
    script: "tcp/server.ts",
    client: "tcp/client.ts",
    prog: "tcp-client",
    port: freeTcpPort,
    // deno task tcp:server: --allow-net=0.0.0.0:8081 --allow-read=. --allow-write=.
    serverPermissions: (out, port) => [
      `--allow-net=127.0.0.1:${port}`,
      `--allow-read=${out}`,
      `--allow-write=${out}`,
    ],
    // deno task tcp:client: --allow-net=127.0.0.1:8081 --allow-read=input.jpeg
    clientPermissions: (file, port) => [`--allow-net=127.0.0.1:${port}`, `--allow-read=${file}`],
    task: "--allow-net=127.0.0.1:PORT --allow-read=OUT --allow-write=OUT",
    received: "received_input.jpeg",
    escaped: "received_escape.txt",
    async sendNamed(port, name, body) {
      const reply = await sendFramedByHand(port, name, body);
      assert.ok("value" in reply, `incomplete reply: ${JSON.stringify(reply)}`);
      assert.equal(reply.value.status, FramedStatus.OK, reply.value.message);
      assert.equal(reply.value.bytes, body.length);
    },
  },
  {
    script: "udp/server.ts",
    client: "udp/client.ts",
    prog: "udp-client",
    port: () => Promise.resolve(0),
    // deno task udp:server: --allow-net=0.0.0.0:8082,127.0.0.1 --allow-read=. --allow-write=.
    serverPermissions: (out) => ["--allow-net=127.0.0.1", `--allow-read=${out}`, `--allow-write=${out}`],
    // deno task udp:client: --allow-net=127.0.0.1:8082,0.0.0.0:0 --allow-read=input.jpeg
    clientPermissions: (file, port) => [
      `--allow-net=127.0.0.1:${port},0.0.0.0:0`,
      `--allow-read=${file}`,
    ],
    task: "--allow-net=127.0.0.1 --allow-read=OUT --allow-write=OUT",
    received: "received_input_udp.jpeg",
    escaped: "received_escape_udp.txt",
    async sendNamed(port, name, body) {
      const reply = await sendReliableByHand(port, name, body);
      assert.equal(reply.type, MsgType.DONE, JSON.stringify(reply));
      if (reply.type !== MsgType.DONE) return;
      assert.equal(reply.status, ReliableStatus.OK, reply.message);
      assert.equal(reply.bytes, body.length);
    },
  },
];

for (const c of CASES) {
  describe(`deno sandbox: ${c.script} with ${c.task}`, () => {
    /** Starts the server sandboxed to `out` (and `--out` set to `outFlag`, by default `out`). */
    async function start(out: string, outFlag = out): Promise<ServerProcess> {
      const port = await c.port();
      return await startServer(
        deno,
        c.script,
        ["--host", "127.0.0.1", "--port", String(port), "--out", outFlag, "--once", "--json"],
        { permissions: c.serverPermissions(out, port) },
      );
    }

    test("(a) a normal transfer works", { timeout: 60000 }, async () => {
      const { base, out } = layout();
      const before = snapshot(base, out);
      const srv = await start(out);
      try {
        const res = await runEntry(deno, c.client, ["--port", String(srv.port), "--file", SAMPLE, "--json"], {
          permissions: c.clientPermissions(SAMPLE, srv.port),
        });
        assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        assert.equal(lastJson(res.stdout).status, "success");
        assert.equal(await srv.exited(), 0, srv.stderr());
        assert.deepEqual(listDir(out), [c.received]);
        assert.equal(sha256File(join(out, c.received)), sha256File(SAMPLE));
        assert.deepEqual(snapshot(base, out), before);
      } finally {
        await srv.stop();
      }
    });

    test("(b) --out outside the granted folder fails at start: exit 5, names --allow-write= it", {
      timeout: 60000,
    }, async () => {
      const { base, out } = layout();
      const other = join(base, "other");
      fs.mkdirSync(other);
      const before = snapshot(base, out);
      const port = await c.port();
      const res = await runEntry(
        deno,
        c.script,
        ["--host", "127.0.0.1", "--port", String(port), "--out", other, "--once", "--json"],
        { permissions: c.serverPermissions(out, port), timeoutMs: 20000 },
      );
      assert.equal(res.code, 5, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
      const line = errorLine(res.stderr, c.script.replace(/\.ts$/, "").replace("/", "-"));
      assert.match(line, /permission denied by Deno/);
      assertNamesFlag(line, "write", other);
      assert.ok(!res.stdout.includes('"listening"'), `it started listening: ${res.stdout}`);
      assert.deepEqual(listDir(out), []);
      assert.deepEqual(snapshot(base, out), before);
    });

    test("(c) a client allowed to read one file cannot send another: exit 5, names --allow-read= it", {
      timeout: 60000,
    }, async () => {
      const { base, out, parent } = layout();
      const allowed = makeFile(parent, "allowed.bin", 5000);
      const secret = makeFile(parent, "secret.bin", 5000);
      const srv = await start(out);
      try {
        const res = await runEntry(deno, c.client, ["--port", String(srv.port), "--file", secret], {
          permissions: c.clientPermissions(allowed, srv.port),
        });
        assert.equal(res.code, 5, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        const line = errorLine(res.stderr, c.prog);
        assert.match(line, /permission denied by Deno/);
        assertNamesFlag(line, "read", secret);
        // Nothing reached the server, which still waits for its one transfer.
        assert.deepEqual(listDir(out), []);
        assert.equal(srv.child.exitCode, null, "the server stopped");
        assert.ok(!srv.events.some((e) => e.event === "received"), JSON.stringify(srv.events));
      } finally {
        await srv.stop();
      }
      assert.ok(fs.existsSync(join(base, "keep-base.txt")));
    });

    test(`(d) a file named '${ESCAPE_NAME}' is saved inside --out, nothing is written outside`, {
      timeout: 60000,
    }, async () => {
      const { base, parent, out } = layout();
      const before = snapshot(base, out);
      const srv = await start(out);
      try {
        await c.sendNamed(srv.port, ESCAPE_NAME, ESCAPE_BODY);
        const rec = await srv.waitFor((e) => e.event === "received");
        assert.equal(rec.path, join(out, c.escaped));
        assert.equal(await srv.exited(), 0, srv.stderr());
      } finally {
        await srv.stop();
      }
      assert.deepEqual(listDir(out), [c.escaped]);
      assert.deepEqual(new Uint8Array(fs.readFileSync(join(out, c.escaped))), ESCAPE_BODY);
      // base/parent/out/../../escape.txt is base/escape.txt: not there, and the
      // folders above --out are exactly as before.
      assert.ok(!fs.existsSync(join(base, "escape.txt")));
      assert.ok(!fs.existsSync(join(parent, "escape.txt")));
      assert.deepEqual(snapshot(base, out), before);
    });
  });
}
