/**
 * The compiled programs in `dist/` (built by `deno task compile:bun`, or
 * `deno task compile` where Deno can fetch its runtime): real transfers of
 * the sample image between them, TCP framed and classic, UDP reliable and
 * classic, the standalone binaries and the combined `imgxfer <command>`
 * forms, through the relay binary too; `--version` of each; the combined
 * program's usage errors. Skipped, with the reason printed, when `dist/`
 * lacks a binary.
 *
 * @module
 */

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { VERSION } from "../shared/version.ts";
import {
  lastJson,
  listDir,
  ROOT,
  run,
  type RuntimeInfo,
  SAMPLE,
  ScratchDirs,
  sha256File,
  skipBecause,
  startServer,
} from "./helpers.ts";

const DIST = join(ROOT, "dist");
/** Each binary and the name it gives itself in `--version` and in its error lines. */
const BINARIES: Record<string, string> = {
  "imgxfer-tcp-server": "tcp-server",
  "imgxfer-tcp-client": "tcp-client",
  "imgxfer-udp-server": "udp-server",
  "imgxfer-udp-client": "udp-client",
  "imgxfer-relay": "udp-relay",
  "imgxfer": "imgxfer",
};
const bin = (name: string) => join(DIST, name);

const missing = Object.keys(BINARIES).filter((name) => !fs.existsSync(bin(name)));
const SKIP: string | false = missing.length === Object.keys(BINARIES).length
  ? skipBecause("dist/ has no compiled binaries: build them with 'deno task compile:bun'")
  : missing.length > 0
  ? skipBecause(`dist/ lacks ${missing.join(", ")}: rebuild with 'deno task compile:bun'`)
  : false;

// Binaries older than the sources test old code: say so (it is not a failure).
if (!SKIP) {
  const built = Math.min(...Object.keys(BINARIES).map((name) => fs.statSync(bin(name)).mtimeMs));
  const newer = ["mod.ts", "tcp", "udp", "shared"].flatMap((entry) => {
    const path = join(ROOT, entry);
    const files = fs.statSync(path).isDirectory()
      ? fs.readdirSync(path).filter((f) => f.endsWith(".ts")).map((f) => join(entry, f))
      : [entry];
    return files.filter((f) => fs.statSync(join(ROOT, f)).mtimeMs > built);
  });
  if (newer.length > 0) {
    console.log(
      `NOTE: dist/ is older than ${newer.slice(0, 3).join(", ")}${newer.length > 3 ? ", …" : ""}: ` +
        "these tests run the old build (rebuild with 'deno task compile:bun')",
    );
  }
}

/** `startServer` only uses the runtime to build a command line; with `cmd` given, it is unused. */
const ANY_RT: RuntimeInfo = { name: "bun", bin: "unused" };

const scratch = new ScratchDirs("imgxfer-bin-");
after(() => scratch.cleanup());
const freshDir = (): string => scratch.fresh();

/** The arguments every server here gets: loopback, any port, one transfer, JSON events. */
function serverArgs(out: string): string[] {
  return ["--json", "--port", "0", "--host", "127.0.0.1", "--out", out, "--once"];
}

/**
 * Asserts that a failure ends stderr with exactly one error line, under the
 * program's own name, with no stack trace (progress lines may precede it:
 * logs go to stderr).
 */
function assertErrorLine(stderr: string, prog: string, phrase: RegExp): void {
  assert.ok(!stderr.includes("    at "), `stack trace on stderr:\n${stderr}`);
  const lines = stderr.trim().split(/\r?\n/);
  const errors = lines.filter((l) => /\berror:/.test(l));
  assert.equal(errors.length, 1, `expected one error line on stderr:\n${stderr}`);
  const last = lines[lines.length - 1];
  assert.equal(last, errors[0], `the error line is not the last on stderr:\n${stderr}`);
  assert.ok(
    last.startsWith(`${prog}: error:`),
    `the error line does not start with '${prog}: error:': ${last}`,
  );
  assert.match(last, phrase);
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

/** A program as a command-line prefix: a standalone binary, or the combined one with its subcommand. */
interface Prog {
  label: string;
  cmd: string[];
}

const standalone = (name: string): Prog => ({ label: name, cmd: [bin(name)] });
const combined = (sub: string): Prog => ({ label: `imgxfer ${sub}`, cmd: [bin("imgxfer"), sub] });

interface TransferCase {
  transport: "tcp" | "udp";
  mode: "framed" | "classic" | "reliable";
  server: Prog;
  client: Prog;
}

const CASES: TransferCase[] = [
  {
    transport: "tcp",
    mode: "framed",
    server: standalone("imgxfer-tcp-server"),
    client: standalone("imgxfer-tcp-client"),
  },
  {
    transport: "tcp",
    mode: "classic",
    server: standalone("imgxfer-tcp-server"),
    client: standalone("imgxfer-tcp-client"),
  },
  {
    transport: "udp",
    mode: "reliable",
    server: standalone("imgxfer-udp-server"),
    client: standalone("imgxfer-udp-client"),
  },
  {
    transport: "udp",
    mode: "classic",
    server: standalone("imgxfer-udp-server"),
    client: standalone("imgxfer-udp-client"),
  },
  { transport: "tcp", mode: "framed", server: combined("tcp-server"), client: combined("tcp-client") },
  {
    transport: "tcp",
    mode: "classic",
    server: combined("tcp-server"),
    client: standalone("imgxfer-tcp-client"),
  },
  { transport: "udp", mode: "reliable", server: combined("udp-server"), client: combined("udp-client") },
  {
    transport: "udp",
    mode: "classic",
    server: standalone("imgxfer-udp-server"),
    client: combined("udp-client"),
  },
];

/** The file the server must have saved: the only one in `out`, no temporary left. */
function assertReceivedIntact(out: string, name: string): void {
  assert.deepEqual(listDir(out), [name], `files in --out: ${listDir(out).join(", ")}`);
  assert.equal(sha256File(join(out, name)), sha256File(SAMPLE), `${name} differs from the sample`);
}

describe("compiled binaries: --version and usage", () => {
  for (const [name, prog] of Object.entries(BINARIES)) {
    test(`dist/${name} --version`, { skip: SKIP, timeout: 30000 }, async () => {
      const res = await run([bin(name), "--version"], { timeoutMs: 20000 });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stderr, "");
      assert.match(
        res.stdout,
        new RegExp(`^${prog} ${VERSION.replace(/\./g, "\\.")} \\((bun|deno) \\d[^)]*\\)\\n$`),
      );
    });
  }

  test(
    "dist/imgxfer --help lists the five commands, with examples",
    { skip: SKIP, timeout: 30000 },
    async () => {
      const res = await run([bin("imgxfer"), "--help"], { timeoutMs: 20000 });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^Usage: imgxfer <command>/);
      for (const sub of ["tcp-server", "tcp-client", "udp-server", "udp-client", "relay"]) {
        assert.match(res.stdout, new RegExp(`^  ${sub} +\\S.*$`, "m"), `no description line for ${sub}`);
        assert.match(res.stdout, new RegExp(`^  imgxfer ${sub} `, "m"), `no example for ${sub}`);
      }
      assert.match(res.stdout, /Exit codes:/);
    },
  );

  test(
    "dist/imgxfer <command> --help is the command's own help",
    { skip: SKIP, timeout: 30000 },
    async () => {
      const res = await run([bin("imgxfer"), "udp-client", "--help"], { timeoutMs: 20000 });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^Usage: udp-client \[options\]/);
    },
  );

  for (
    const [args, phrase] of [
      [[], /missing command: one of tcp-server, tcp-client, udp-server, udp-client, relay/],
      [["tcp-sever"], /unknown command 'tcp-sever'/],
      [["--port", "8081"], /unknown option '--port'/],
    ] as Array<[string[], RegExp]>
  ) {
    test(`dist/imgxfer ${args.join(" ") || "(no arguments)"} is a usage error: exit 2, one line`, {
      skip: SKIP,
      timeout: 30000,
    }, async () => {
      const res = await run([bin("imgxfer"), ...args], { timeoutMs: 20000 });
      assert.equal(res.code, 2, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
      assert.equal(res.stdout, "");
      assertErrorLine(res.stderr, "imgxfer", phrase);
    });
  }

  for (const client of [standalone("imgxfer-tcp-client"), combined("tcp-client")]) {
    test(`${client.label} to a closed port: exit 4, one line under 'tcp-client:'`, {
      skip: SKIP,
      timeout: 30000,
    }, async () => {
      const port = await freeTcpPort();
      const res = await run([...client.cmd, "--port", String(port), "--file", SAMPLE], { timeoutMs: 20000 });
      assert.equal(res.code, 4, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
      assertErrorLine(
        res.stderr,
        "tcp-client",
        new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}: connection refused`),
      );
    });
  }

  test("dist/imgxfer tcp-server --port 70000: exit 2, one line under 'tcp-server:'", {
    skip: SKIP,
    timeout: 30000,
  }, async () => {
    const res = await run([bin("imgxfer"), "tcp-server", "--port", "70000"], { timeoutMs: 20000 });
    assert.equal(res.code, 2, res.stderr);
    assertErrorLine(res.stderr, "tcp-server", /--port must be 0-65535, got 70000/);
  });
});

describe("compiled binaries: transfers of the sample image", () => {
  for (const c of CASES) {
    test(`${c.transport.toUpperCase()} ${c.mode}: ${c.server.label} ← ${c.client.label}`, {
      skip: SKIP,
      timeout: 60000,
    }, async () => {
      const out = freshDir();
      const srv = await startServer(ANY_RT, "", [], { cmd: [...c.server.cmd, ...serverArgs(out)] });
      try {
        const args = ["--host", "127.0.0.1", "--port", String(srv.port), "--file", SAMPLE, "--json"];
        if (c.mode === "classic") args.push("--classic");
        const res = await run([...c.client.cmd, ...args], { timeoutMs: 30000 });
        assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        assert.ok(!/\berror:/.test(res.stderr), res.stderr);
        const summary = lastJson(res.stdout);
        assert.equal(summary.status, "success");
        assert.equal(summary.bytes, 61306);
        assert.equal(await srv.exited(), 0, srv.stderr());
        assertReceivedIntact(out, c.transport === "tcp" ? "received_input.jpeg" : "received_input_udp.jpeg");
      } finally {
        await srv.stop();
      }
    });
  }

  for (const relay of [standalone("imgxfer-relay"), combined("relay")]) {
    test(`UDP reliable through ${relay.label} at 10% loss each way arrives intact`, {
      skip: SKIP,
      timeout: 60000,
    }, async () => {
      const out = freshDir();
      const srv = await startServer(ANY_RT, "", [], {
        cmd: [bin("imgxfer-udp-server"), ...serverArgs(out)],
      });
      let relayProc;
      try {
        relayProc = await startServer(ANY_RT, "", [], {
          cmd: [
            ...relay.cmd,
            "--listen",
            "127.0.0.1:0",
            "--target",
            `127.0.0.1:${srv.port}`,
            "--loss",
            "10%",
            "--seed",
            "7",
            "--json",
          ],
        });
        const res = await run(
          [
            bin("imgxfer-udp-client"),
            "--port",
            String(relayProc.port),
            "--file",
            SAMPLE,
            "--buffer",
            "1400",
            "--json",
          ],
          { timeoutMs: 30000 },
        );
        assert.equal(res.code, 0, `stdout: ${res.stdout}\nstderr: ${res.stderr}`);
        assert.equal(lastJson(res.stdout).status, "success");
        assert.equal(await srv.exited(), 0, srv.stderr());
        assertReceivedIntact(out, "received_input_udp.jpeg");
        // The relay stops on SIGTERM with exit 0 and its counters: some datagrams were dropped.
        // process.kill, not child.kill(): after child.kill(), Deno's node:child_process
        // reports the signal instead of the exit code the relay chose.
        process.kill(relayProc.child.pid!, "SIGTERM");
        assert.equal(await relayProc.exited(), 0, relayProc.stderr());
        const stopped = await relayProc.waitFor((e) => e.event === "stopped");
        const forward = stopped.forward as { in: number; lost: number };
        const backward = stopped.backward as { in: number; lost: number };
        assert.ok(forward.in > 0 && backward.in > 0, JSON.stringify(stopped));
        assert.ok(forward.lost + backward.lost > 0, `nothing was dropped: ${JSON.stringify(stopped)}`);
      } finally {
        await relayProc?.stop();
        await srv.stop();
      }
    });
  }
});
