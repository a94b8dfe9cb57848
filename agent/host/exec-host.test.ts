import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ExecHost, NftApplySession, applySessionKey } from './exec-host.js';

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

// ExecHost.nftApply through one long-lived `nft -i` (NftApplySession), against a stand-in that
// speaks as nft 1.0.6 does: nothing on success, errors on stderr in order, the marker's
// "No such file or directory" echoed with its command line and a caret line
describe('ExecHost.nftApply through an nft -i session', () => {
  function fakeNft(name: string, interactive: string): { path: string; log: string } {
    const log = join(dir, `${name}.log`);
    const path = fakeArping(
      name,
      [`LOG='${log}'`, 'if [ "$1" = "-i" ]; then', '  echo session >> "$LOG"', interactive, '  exit 0', 'fi', 'cat >> "$LOG"; echo spawned >> "$LOG"'].join(
        '\n',
      ),
    );
    return { path, log };
  }
  /** the stand-in's `nft -i`: `refuse` prints a refusal of an included file holding BAD ($f), `marker` the marker's error ($line) */
  const interactive = (refuse: string, marker: string) =>
    [
      '  while IFS= read -r line; do',
      '    case "$line" in',
      "      include*) f=$(printf '%s' \"$line\" | cut -d'\"' -f2)",
      `        if grep -q BAD "$f"; then ${refuse}; fi`,
      '        cat "$f" >> "$LOG";;',
      `      list*) ${marker};;`,
      '    esac',
      '  done',
    ].join('\n');
  const speaks = interactive(
    `printf 'In file included from <cmdline>:1:1-30:\\n%s:1:1-3: Error: syntax error, unexpected BAD\\nBAD\\n^^^\\n' "$f" >&2`,
    `printf 'Error: No such file or directory\\n%s\\n              ^^^^^^^^\\n' "$line" >&2`,
  );
  const logOf = (f: { log: string }) => readFileSync(f.log, 'utf8');

  it('applies every ruleset through one nft process, in order', async () => {
    const f = fakeNft('nft-i-ok', speaks);
    const h = new ExecHost({ nftPath: f.path });
    await h.nftApply('add chain ip t a\n');
    await Promise.all([h.nftApply('add chain ip t b\n'), h.nftApply('add chain ip t c\n')]);
    h.close();
    expect(logOf(f)).toBe('session\nadd chain ip t a\nadd chain ip t b\nadd chain ip t c\n');
  });

  it('one session per table: another table does not wait behind it', async () => {
    const f = fakeNft('nft-i-tables', speaks);
    const h = new ExecHost({ nftPath: f.path });
    await h.nftApply('add chain ip t a\n');
    await h.nftApply('add chain ip u a\n');
    await h.nftApply('add chain ip t b\n');
    h.close();
    expect(logOf(f)).toBe('session\nadd chain ip t a\nsession\nadd chain ip u a\nadd chain ip t b\n');
  });

  it("nft's refusal rejects the apply with nft's message, and the session goes on", async () => {
    const f = fakeNft('nft-i-refuses', speaks);
    const h = new ExecHost({ nftPath: f.path });
    await expect(h.nftApply('add chain ip t BAD\n')).rejects.toThrow(/nft -f - failed: In file included from .*\n.*Error: syntax error, unexpected BAD/);
    await h.nftApply('add chain ip t good\n');
    h.close();
    expect(logOf(f)).toBe('session\nadd chain ip t BAD\nadd chain ip t good\n');
  });

  it('a session that cannot answer (nft -i exits at once) leaves the apply to nft -f', async () => {
    const f = fakeNft('nft-i-exits', '  :');
    const h = new ExecHost({ nftPath: f.path });
    await h.nftApply('add table ip a\n');
    h.close();
    expect(logOf(f)).toBe('session\nadd table ip a\nspawned\n');
  });

  it('a session that never writes its marker is given up for good after one timeout: that apply and every later one through nft -f, in order', async () => {
    const f = fakeNft('nft-i-mute', '  cat > /dev/null');
    const h = new ExecHost({ nftPath: f.path, applyTimeoutMs: 200 });
    const t0 = Date.now();
    await Promise.all([h.nftApply('add chain ip t a\n'), h.nftApply('add chain ip t b\n')]);
    // one timeout for both (the second waited in the queue, then went straight to nft -f)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    await h.nftApply('add chain ip t c\n');
    h.close();
    expect(logOf(f)).toBe('session\nadd chain ip t a\nspawned\nadd chain ip t b\nspawned\nadd chain ip t c\nspawned\n');
  });

  it('close() with an apply in flight and one queued: both go to their fallback, in order, and no session starts again', async () => {
    const f = fakeNft('nft-i-mute2', '  cat > /dev/null');
    const s = new NftApplySession(f.path);
    const ran: string[] = [];
    const fallback = (name: string) => async () => (ran.push(name), { stdout: '', stderr: '', code: 0 });
    const first = s.apply('add chain ip t a\n', fallback('a'));
    const second = s.apply('add chain ip t b\n', fallback('b'));
    // the first is in flight once the session has started
    await vi.waitFor(() => expect(s.starts).toBe(1));
    s.close();
    expect(await Promise.all([first, second])).toEqual([
      { stdout: '', stderr: '', code: 0 },
      { stdout: '', stderr: '', code: 0 },
    ]);
    expect({ ran, starts: s.starts }).toEqual({ ran: ['a', 'b'], starts: 1 });
  });

  it("nft's answer in pieces (the marker's caret line after a pause, an error split mid-line): each apply gets its own verdict", async () => {
    const slow = interactive(
      `printf 'In file included from <cmdline>:1:1-30:\\n%s:1:1-3: Err' "$f" >&2; sleep 0.05; printf 'or: syntax error, unexpected BAD\\nBAD\\n^^^\\n' >&2`,
      `printf 'Error: No such file or directory\\n%s\\n' "$line" >&2; sleep 0.05; printf '              ^^^^^^^^\\n' >&2`,
    );
    const f = fakeNft('nft-i-pieces', slow);
    const h = new ExecHost({ nftPath: f.path });
    await h.nftApply('add chain ip t a\n');
    await expect(h.nftApply('add chain ip t BAD\n')).rejects.toThrow(/Error: syntax error, unexpected BAD/);
    await h.nftApply('add chain ip t b\n');
    h.close();
    expect(logOf(f)).toBe('session\nadd chain ip t a\nadd chain ip t BAD\nadd chain ip t b\n');
  });

  it('after close(), a process per apply: no session is started again', async () => {
    const f = fakeNft('nft-i-closed', speaks);
    const h = new ExecHost({ nftPath: f.path });
    h.close();
    await h.nftApply('add table ip a\n');
    expect(logOf(f)).toBe('add table ip a\nspawned\n');
  });
});

// An agent just restarted finds the previous agent's tables in the kernel: its first apply must
// refill them in place, not re-create them (nft-replace.ts: a re-created interval set misses
// lookups for a moment; session 39 caught a pod's segment leaving with its own IP right then)
describe('ExecHost.nftApply: a table this host has not committed is read from the kernel once, then refilled in place', () => {
  const RULESET =
    'table ip t {}\ndelete table ip t\ntable ip t {\n\tset s { type ipv4_addr; flags interval; elements = { 8.8.8.0/24 } }\n\tchain c {\n\t\ttype filter hook prerouting priority mangle - 10; policy accept;\n\t\tip daddr @s meta mark set 1\n\t}\n}\n';
  /** `nft -s list table ip t` as nft 1.0.6 prints the table RULESET defines (or `missing`: no such table) */
  function nftWithTable(name: string, listing: 'present' | 'missing' | 'differs'): { path: string; log: string } {
    const log = join(dir, `${name}.log`);
    const flags = listing === 'differs' ? '' : '\\t\\tflags interval\\n';
    const listed =
      listing === 'missing'
        ? "echo 'Error: No such file or directory' >&2; exit 1"
        : `printf 'table ip t {\\n\\tset s {\\n\\t\\ttype ipv4_addr\\n${flags}\\t\\telements = { 8.8.8.0/24 }\\n\\t}\\n\\n\\tchain c {\\n\\t\\ttype filter hook prerouting priority mangle - 10; policy accept;\\n\\t\\tip daddr @s meta mark set 0x00000001\\n\\t}\\n}\\n'`;
    const path = fakeArping(
      name,
      [`LOG='${log}'`, 'if [ "$1" = "-s" ]; then echo "listed $*" >> "$LOG"', `  ${listed}`, '  exit 0', 'fi', 'cat >> "$LOG"; echo spawned >> "$LOG"'].join(
        '\n',
      ),
    );
    return { path, log };
  }
  it('present: listed once; the first apply already flushes the kept set instead of deleting the table', async () => {
    const f = nftWithTable('nft-listed', 'present');
    const h = new ExecHost({ nftPath: f.path, applySession: false });
    await h.nftApply(RULESET);
    await h.nftApply(RULESET);
    const log = readFileSync(f.log, 'utf8');
    expect(log.split('\n').filter((l) => l.startsWith('listed'))).toEqual(['listed -s -t list table ip t']);
    expect(log).not.toMatch(/^delete table/m);
    expect(log.match(/^table ip t \{\}\nflush table ip t\nflush set ip t s\n/gm)).toHaveLength(2);
  });
  it('a listing whose set is declared otherwise: that set is re-declared (it cannot be refilled), and the host says so', async () => {
    const f = nftWithTable('nft-differs', 'differs');
    const errors: string[] = [];
    const h = new ExecHost({ nftPath: f.path, applySession: false, onError: (m) => errors.push(m) });
    await h.nftApply(RULESET);
    expect(readFileSync(f.log, 'utf8')).toMatch(/^flush table ip t\ndelete set ip t s\n/m);
    expect(errors).toEqual(['table ip t as the kernel listed it differs from its rendered definition (set s re-declared)']);
  });
  it('missing: created as rendered (nothing to keep), and refilled in place from then on', async () => {
    const f = nftWithTable('nft-missing', 'missing');
    const h = new ExecHost({ nftPath: f.path, applySession: false });
    await h.nftApply(RULESET);
    await h.nftApply(RULESET);
    const log = readFileSync(f.log, 'utf8');
    expect(log.split('\n').filter((l) => l.startsWith('listed'))).toHaveLength(1);
    expect(log.match(/^delete table ip t$/gm)).toHaveLength(1);
    expect(log.match(/^flush set ip t s$/gm)).toHaveLength(1);
  });
});

describe('applySessionKey', () => {
  it('the first table a ruleset names, whatever the command', () => {
    expect(applySessionKey('# egresslab masquerade\ntable ip egresslab_masq {}\ndelete table ip egresslab_masq\n')).toBe('egresslab_masq');
    expect(applySessionKey('# egresslab egress NAT gateway datapath for node node-1: one nft transaction\ntable ip egresslab_gw {}\n')).toBe('egresslab_gw');
    expect(applySessionKey('insert rule ip egresslab_gw prerouting iifname "eth0" ip saddr @p0_dst drop\n')).toBe('egresslab_gw');
    expect(applySessionKey('add element arp egresslab_gw alive { 192.168.1.100 timeout 400ms }\n')).toBe('egresslab_gw');
    expect(applySessionKey('delete table ip egresslab_boot\n')).toBe('egresslab_boot');
    expect(applySessionKey('list ruleset\n')).toBe('');
  });
});
