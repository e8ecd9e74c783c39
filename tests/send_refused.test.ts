/**
 * Datagrams this host refuses to send. A firewall rule that drops some
 * outgoing packets makes `sendto()` fail with EPERM (a full queue: ENOBUFS);
 * such a datagram is lost, as on a lossy link, and the transfer goes on.
 * Runs in a private network namespace (`unshare -n`) whose nftables output
 * chain drops packets, so it needs root (or user namespaces) and `nft`;
 * otherwise it is skipped with the reason printed.
 *
 * - `sendMany` on both runtimes: with every other datagram refused, it sends
 *   the other 16 of 32 and resolves to 16 (Bun's sendmmsg stops at the first
 *   refused one; Deno's send throws).
 * - A reliable UDP transfer with 10% of its datagrams refused each way
 *   arrives intact; a classic one ends INCOMPLETE, reported, not crashed.
 *
 * @module
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import {
  commandFor,
  lastJson,
  makeSeededFile,
  otherThan,
  ROOT,
  run,
  type RuntimeInfo,
  runtimes,
  ScratchDirs,
  sha256File,
  skipBecause,
} from "./helpers.ts";
import { after } from "node:test";

const RTS: RuntimeInfo[] = runtimes();
const scratch = new ScratchDirs("imgxfer-refused-");
after(() => scratch.cleanup());

const SBIN = "PATH=/usr/sbin:/sbin:$PATH";

/** Why this machine cannot run the tests, or undefined when it can. */
function unavailable(): string | undefined {
  const nft = spawnSync("sh", ["-c", `${SBIN} command -v nft && ${SBIN} command -v ip`]);
  if (nft.status !== 0) return "nft or ip is not installed (Debian: nftables, iproute2)";
  for (const flags of [["-n"], ["-rn"]]) {
    const probe = spawnSync("unshare", [
      ...flags,
      "sh",
      "-c",
      `${SBIN}; ip link set lo up && nft add table inet probe`,
    ]);
    if (probe.status === 0) return undefined;
  }
  return "cannot create a network namespace with a firewall (unshare -n needs root or user namespaces)";
}
const SKIP = unavailable();
const UNSHARE = spawnSync("unshare", ["-n", "true"]).status === 0 ? ["-n"] : ["-rn"];

function quote(args: string[]): string {
  return args.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
}

/** Runs `script` (bash) in a new network namespace whose output chain applies `rule` to UDP. */
function inNamespace(rule: string, script: string, timeoutMs = 60000) {
  const setup = [
    SBIN,
    "set -e",
    "ip link set lo up",
    "nft add table inet t",
    `nft add chain inet t o '{ type filter hook output priority 0; }'`,
    `nft add rule inet t o meta l4proto udp ${rule} drop`,
    "set +e",
  ].join("\n");
  return run(["unshare", ...UNSHARE, "bash", "-c", `${setup}\n${script}`], { timeoutMs });
}

describe("datagrams refused by this host", { skip: SKIP ? skipBecause(SKIP) : false }, () => {
  for (const rt of RTS) {
    test(`${rt.name}: sendMany skips a refused datagram and sends the rest`, async () => {
      const probe = commandFor(rt, "tests/fixtures/send_many_probe.ts", []);
      const res = await inNamespace(
        "udp dport 47001 numgen inc mod 2 0",
        `cd ${quote([ROOT])} && PROBE_PORT=47001 ${quote(probe)}`,
      );
      assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
      const out = lastJson(res.stdout);
      assert.equal(out.sent, 16);
      assert.deepEqual(out.received, Array.from({ length: 16 }, (_, i) => 2 * i + 1));
    });

    const client = otherThan(rt);
    test(
      `${rt.name} server, ${client.name} client: 10% refused each way, reliable intact, classic reported`,
      {
        timeout: 120000,
      },
      async () => {
        const out = scratch.fresh();
        const file = makeSeededFile(scratch.fresh(), "data.bin", 4 << 20, 11);
        const server = commandFor(rt, "udp/server.ts", [
          "--host",
          "127.0.0.1",
          "--port",
          "47002",
          "--out",
          out,
        ]);
        const send = (extra: string[]) =>
          quote(commandFor(client, "udp/client.ts", [
            ...["--port", "47002", "--file", file, "--buffer", "1400", "--json", "--timeout", "5", ...extra],
          ]));
        const script = [
          `cd ${quote([ROOT])}`,
          `${quote(server)} --json > ${quote([join(out, "server.log")])} 2>&1 &`,
          "sleep 1.5",
          `${send([])}; echo "reliable exit $?"`,
          `${send(["--classic"])}; echo "classic exit $?"`,
          "kill %1; wait",
        ].join("\n");
        const res = await inNamespace("numgen random mod 10 0", script, 110000);
        const lines = res.stdout.split("\n");
        const reliable = JSON.parse(lines.find((l) => l.includes('"mode":"reliable"'))!);
        assert.equal(reliable.status, "success", res.stdout + res.stderr);
        assert.match(res.stdout, /reliable exit 0/);
        assert.equal(sha256File(join(out, "received_data_udp.bin")), sha256File(file));
        const classic = JSON.parse(lines.find((l) => l.includes('"mode":"classic"'))!);
        assert.notEqual(classic.status, "success", "10% of the classic datagrams never left");
        assert.match(res.stdout, /classic exit 1/);
        assert.doesNotMatch(res.stderr, /\n\s+at /, "no stack trace");
      },
    );
  }
});
