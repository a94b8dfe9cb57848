import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExecHost } from './exec-host.js';

// ExecHost.arpProbe against stand-ins for iputils arping -D (each prints what arping prints, then
// exits as it does): the parsing and the exit codes, without a network
const dir = mkdtempSync(join(tmpdir(), 'egresslab-arping-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function fakeArping(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}
const probe = (script: string, waitMs = 50) => new ExecHost({ arpingPath: script }).arpProbe('eth0', '192.168.1.103', waitMs);

describe('ExecHost.nftTableExists (against stand-ins for nft)', () => {
  const exists = (body: string) => new ExecHost({ nftPath: fakeArping(`nft-${body.length}`, body) }).nftTableExists('ip', 'egresslab_boot');
  it('true when nft lists it, false when nft says there is no such table', async () => {
    expect(await exists('exit 0')).toBe(true);
    expect(await exists('echo "Error: No such file or directory" >&2; exit 1')).toBe(false);
  });
  it('rejects when nft itself fails (the agent tries again instead of taking it for "no table")', async () => {
    await expect(exists('echo "Error: Operation not permitted" >&2; exit 1')).rejects.toThrow(
      /nft list table ip egresslab_boot failed: Error: Operation not permitted/,
    );
    await expect(new ExecHost({ nftPath: join(dir, 'no-such-nft') }).nftTableExists('ip', 'x')).rejects.toThrow(/nft list table ip x failed/);
  });
});

describe('ExecHost.arpProbe (address conflict detection through arping -D)', () => {
  it('a reply: the MAC of the host that answered, lower case', async () => {
    const s = fakeArping(
      'reply',
      'echo "ARPING 192.168.1.103 from 0.0.0.0 eth0"; echo "Unicast reply from 192.168.1.103 [02:A8:03:25:83:D9]  0.536ms"; echo "Sent 1 probes (1 broadcast(s))"; exit 1',
    );
    expect(await probe(s)).toBe('02:a8:03:25:83:d9');
  });
  it("another host's own request from the address (an announcement) is a conflict too", async () => {
    const s = fakeArping(
      'request',
      'echo "ARPING 192.168.1.103 from 0.0.0.0 eth0"; echo "Broadcast request from 192.168.1.103 [02:00:00:00:00:99]  0.4ms"; exit 1',
    );
    expect(await probe(s)).toBe('02:00:00:00:00:99');
  });
  it('nobody answers within the wait after the request left: null, without waiting for arping to end (it is killed)', async () => {
    // an arping that would wait ten minutes: the verdict comes from the wait, or the test times out
    const s = fakeArping('silent', 'echo "ARPING 192.168.1.103 from 0.0.0.0 eth0"; exec sleep 600');
    expect(await probe(s, 50)).toBeNull();
  });
  it('exit 1 with no line to read is still a conflict', async () => {
    expect(await probe(fakeArping('quiet-conflict', 'exit 1'))).toBe('unknown');
  });
  it('an error (exit 2, the interface down) rejects with what arping said', async () => {
    await expect(probe(fakeArping('down', 'echo "Interface \\"eth0\\" is down" >&2; exit 2'))).rejects.toThrow(/exit 2.*Interface "eth0" is down/);
  });
});
