import { describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHost } from '../host/fake-host.js';
import type { ExecResult } from '../host/host.js';
import {
  CTSYNC_EVENTS,
  ConntrackStartAbandoned,
  ConntrackSync,
  commitScript,
  stopLeftoverConntrackd,
  committedFromLog,
  conntrackdConfigIssues,
  conntrackdPaths,
  countCacheEntries,
  BINDING_SAVE_ARGS,
  FloatingIPHistory,
  floatingHistoryText,
  foreignBindingPurgeArgs,
  strayEntryPurgeArgs,
  parseFloatingHistory,
  keptBindingLines,
  keptBindingsAt,
  mergeKept,
  keptBindingsByIP,
  logTail,
  renderConntrackdConfig,
  renderCtSyncTable,
} from './conntrack-sync.js';

describe('conntrackd config', () => {
  it('NOTRACK over multicast on the uplink only, with the node IP as the interface address', () => {
    const c = renderConntrackdConfig({ nodeIP: '192.168.1.3', uplink: 'eth0' });
    expect(c).toContain('Mode NOTRACK {');
    expect(c).toMatch(/Multicast \{\n\t\tIPv4_address 225\.0\.0\.50\n\t\tGroup 3780\n\t\tIPv4_interface 192\.168\.1\.3\n\t\tInterface eth0\n/);
    expect(c).toContain('StartupResync yes');
    expect(c).toContain('NetlinkOverrunResync off'); // an overrun would dump the whole table (un-NATed entries too)
    expect(c).toContain('Systemd no');
    const p = conntrackdPaths();
    for (const path of [p.log, p.lock, p.socket]) expect(c).toContain(path);
    expect(c).not.toMatch(/Helper|NFQUEUE|QueueNum/); // the kernel here has no NFQUEUE
    expect(c).not.toMatch(/\bUDP \{|\bTCP \{/); // no unicast transport: one multicast group for N nodes
    // TCP bindings only (UDP/ICMP ones are re-created by the new holder, which keeps a free port)
    expect(c).toMatch(/Protocol Accept \{\n\t\t\tTCP\n\t\t\}/);
  });

  it('honours the run dir, group and port', () => {
    const c = renderConntrackdConfig({ nodeIP: '10.0.0.1', uplink: 'ens3', runDir: '/tmp/x', group: '239.1.2.3', port: 4000 });
    expect(c).toContain('IPv4_address 239.1.2.3');
    expect(c).toContain('Group 4000');
    expect(c).toContain('LockFile /tmp/x/conntrackd.lock');
  });

  it('refuses anything that would break the file or leave the segment, naming every problem', () => {
    expect(conntrackdConfigIssues({ nodeIP: '192.168.1.3', uplink: 'eth0' })).toEqual([]);
    const issues = conntrackdConfigIssues({ nodeIP: '192.168.1.300', uplink: 'eth0 }', group: '8.8.8.8', port: 0, runDir: 'relative' });
    expect(issues).toEqual([
      'nodeIP: must be an IPv4 address (got "192.168.1.300")',
      'uplink: must be an interface name (got "eth0 }")',
      'group: must be an IPv4 multicast address (got "8.8.8.8")',
      'port: must be 1-65535 (got 0)',
      'runDir: must be an absolute path of [A-Za-z0-9_./-] (got "relative")',
    ]);
    expect(() => renderConntrackdConfig({ nodeIP: 'x', uplink: 'eth0' })).toThrow(/conntrackd config: nodeIP: must be an IPv4 address/);
  });
});

describe('egresslab_ctsync table (what gets replicated)', () => {
  it('turns events on only for new connections leaving with a floating IP held here', () => {
    const t = renderCtSyncTable(['192.168.1.101', '192.168.1.100'], { enabled: true });
    expect(t.startsWith('table ip egresslab_ctsync {}\ndelete table ip egresslab_ctsync\n')).toBe(true);
    expect(t).toContain('set owned { type ipv4_addr; elements = { 192.168.1.100, 192.168.1.101 }; }');
    expect(t).toContain(`ct state new ip saddr @owned meta l4proto tcp ct event set ${CTSYNC_EVENTS}`);
    expect(t).toContain('type filter hook postrouting priority srcnat + 20;'); // after egress_snat (90) and the guard (110)
    expect(CTSYNC_EVENTS).toBe('new,related,destroy,reply,assured,protoinfo');
  });

  it('an empty owned set when holding nothing; only the removal when disabled', () => {
    expect(renderCtSyncTable([], { enabled: true })).toContain('set owned { type ipv4_addr; }');
    expect(renderCtSyncTable(['192.168.1.100'], { enabled: false })).toBe('table ip egresslab_ctsync {}\ndelete table ip egresslab_ctsync\n');
    expect(() => renderCtSyncTable(['nope'], { enabled: true })).toThrow(/invalid floating IP "nope"/);
  });

  it('purges committed bindings of floating IPs held elsewhere, by reply destination', () => {
    expect(foreignBindingPurgeArgs(['192.168.1.102', '192.168.1.100', '192.168.1.101'], ['192.168.1.100'])).toEqual([
      ['-D', '-q', '192.168.1.101'],
      ['-D', '-q', '192.168.1.102'],
    ]);
    expect(foreignBindingPurgeArgs(['192.168.1.100'], ['192.168.1.100'])).toEqual([]);
  });

  it("before a take's commit: the entries whose original destination is an IP taken (stray hairpin entries), never a binding", () => {
    expect(strayEntryPurgeArgs(['192.168.1.101', '192.168.1.100'])).toEqual([
      ['-D', '-d', '192.168.1.100'],
      ['-D', '-d', '192.168.1.101'],
    ]);
    expect(strayEntryPurgeArgs([])).toEqual([]);
    // in the commit's shell, before conntrackd -c
    const script = commitScript('conntrackd', '/c.conf', 'conntrack', [], { flush: strayEntryPurgeArgs(['192.168.1.100']) });
    expect(script.split('\n').slice(0, 4)).toEqual([
      "'conntrack' -R - >/dev/null 2>&1 <<'EOF' || { 'conntrack' '-D' '-d' '192.168.1.100' >/dev/null 2>&1; }",
      '-D -d 192.168.1.100',
      'EOF',
      "'conntrackd' -C '/c.conf' -c || exit 3",
    ]);
  });

  it('the purge candidates are the current floating IPs and those seen before, the oldest forgotten past the cap', () => {
    const h = new FloatingIPHistory(3);
    expect(h.note(['192.168.1.100', '192.168.1.101'])).toEqual(['192.168.1.100', '192.168.1.101']);
    // .101 left the gateway: still a candidate
    expect(h.note(['192.168.1.100'])).toEqual(['192.168.1.101', '192.168.1.100']);
    expect(h.note([])).toEqual(['192.168.1.101', '192.168.1.100']);
    // past the cap the least recently seen goes first, never a current one
    expect(h.note(['192.168.1.102', '192.168.1.103'])).toEqual(['192.168.1.100', '192.168.1.102', '192.168.1.103']);
    expect(h.note(['192.168.1.1', '192.168.1.2', '192.168.1.3', '192.168.1.4'])).toEqual(['192.168.1.1', '192.168.1.2', '192.168.1.3', '192.168.1.4']);
  });

  it('the history outlives the agent: written as one IP per line, read back (junk lines dropped, the newest `cap` kept)', () => {
    const text = floatingHistoryText(['192.168.1.101', '192.168.1.100']);
    expect(text).toBe('192.168.1.101\n192.168.1.100\n');
    expect(parseFloatingHistory(text)).toEqual(['192.168.1.101', '192.168.1.100']);
    expect(parseFloatingHistory(null)).toEqual([]);
    expect(parseFloatingHistory('192.168.1.7\nnope\n\n 192.168.1.8 \n300.1.1.1\n')).toEqual(['192.168.1.7', '192.168.1.8']);
    const h = new FloatingIPHistory(2, ['192.168.1.1', '192.168.1.2', '192.168.1.3', 'x']);
    expect(h.note(['192.168.1.100'])).toEqual(['192.168.1.3', '192.168.1.100']);
  });
});

describe('commit script', () => {
  const unbind = ['-D', '-s', '10.10.11.1', '-d', '8.8.8.0', '--mask-dst', '255.255.255.0', '--reply-dst', '192.168.1.102'];
  it('commits, then purges each foreign floating IP and unbinds, as one conntrack batch in the same shell; a failed commit exits 3', () => {
    expect(commitScript('conntrackd', '/run/egresslab/conntrackd/conntrackd.conf', 'conntrack', [['-D', '-q', '192.168.1.101']]).split('\n')).toEqual([
      "'conntrackd' -C '/run/egresslab/conntrackd/conntrackd.conf' -c || exit 3",
      "'conntrack' -R - >/dev/null 2>&1 <<'EOF' || { 'conntrack' '-D' '-q' '192.168.1.101' >/dev/null 2>&1; }",
      '-D -q 192.168.1.101',
      'EOF',
      'exit 0',
    ]);
    expect(commitScript('a', "/x'y", 'c', [])).toBe(`'a' -C '/x'\\''y' -c || exit 3\nexit 0`);
    // a flush right before the commit (its own batch); the purge, then the bindings to another held
    // IP (render.ts misboundBindings) after the commit and the kept load; a failed load still exits 5
    expect(
      commitScript('conntrackd', '/c', 'conntrack', [['-D', '-q', '192.168.1.101']], {
        flush: [['-D', '-s', '10.10.10.1']],
        load: '/k',
        unbind: [unbind],
      }).split('\n'),
    ).toEqual([
      "'conntrack' -R - >/dev/null 2>&1 <<'EOF' || { 'conntrack' '-D' '-s' '10.10.10.1' >/dev/null 2>&1; }",
      '-D -s 10.10.10.1',
      'EOF',
      "'conntrackd' -C '/c' -c || exit 3",
      "'conntrack' -R '/k' >/dev/null 2>&1 || kept=failed",
      "rm -f '/k'",
      `'conntrack' -R - >/dev/null 2>&1 <<'EOF' || { 'conntrack' '-D' '-q' '192.168.1.101' >/dev/null 2>&1; 'conntrack' ${unbind.map((a) => `'${a}'`).join(' ')} >/dev/null 2>&1; }`,
      '-D -q 192.168.1.101',
      unbind.join(' '),
      'EOF',
      '[ "$kept" = failed ] && exit 5',
      'exit 0',
    ]);
    // a batch line is only ever addresses and options: anything else is refused, never written
    expect(() => commitScript('conntrackd', '/c', 'conntrack', [['-D', '-q', '192.168.1.101\nEOF']])).toThrow(/argument "192.168.1.101\\nEOF" is not allowed/);
  });

  it('runs in sh: one conntrack process reads every deletion; a conntrack without batch mode runs them one by one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'egresslab-commit-'));
    try {
      const log = join(dir, 'calls');
      const fake = (name: string, batchExit: number) => {
        const f = join(dir, name);
        // records each call's arguments, and for `-R -` what it read
        writeFileSync(f, `#!/bin/sh\necho "$*" >> '${log}'\nif [ "$1 $2" = "-R -" ]; then sed 's/^/  < /' >> '${log}'; exit ${batchExit}; fi\nexit 0\n`);
        chmodSync(f, 0o755);
        return f;
      };
      const run = (conntrack: string) => {
        writeFileSync(log, '');
        const script = commitScript(fake('conntrackd', 0), '/c', conntrack, [['-D', '-q', '192.168.1.101']], {
          flush: [['-D', '-d', '192.168.1.100']],
          unbind: [unbind],
        });
        const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
        return { code: r.status, calls: readFileSync(log, 'utf8').trim().split('\n') };
      };
      expect(run(fake('conntrack', 0))).toEqual({
        code: 0,
        calls: ['-R -', '  < -D -d 192.168.1.100', '-C /c -c', '-R -', '  < -D -q 192.168.1.101', `  < ${unbind.join(' ')}`],
      });
      expect(run(fake('conntrack-old', 1))).toEqual({
        code: 0,
        calls: [
          '-R -',
          '  < -D -d 192.168.1.100',
          '-D -d 192.168.1.100',
          '-C /c -c',
          '-R -',
          '  < -D -q 192.168.1.101',
          `  < ${unbind.join(' ')}`,
          '-D -q 192.168.1.101',
          unbind.join(' '),
        ],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a holder's own bindings kept across a release (chaos seed 1419845312)", () => {
  const own = (port: number, t = 431990, ip = '192.168.1.100', src = '10.10.10.1', proto = 'tcp', dst = '8.8.8.8') =>
    `-A -t ${t} -u SEEN_REPLY,ASSURED -s ${src} -d ${dst} -r ${dst} -n ${ip} -p ${proto} --sport ${port} --dport 7007 --reply-port-src 7007 --reply-port-dst ${port} --state ESTABLISHED`;
  it('one listing of every TCP entry in the save format (what conntrack -R loads), split by IP', () => {
    expect(BINDING_SAVE_ARGS).toEqual(['-L', '-p', 'tcp', '-o', 'save']);
    const out = [own(1), own(2, 100, '192.168.1.101'), own(3, 100, '192.168.1.102')].join('\n');
    const m = keptBindingsByIP(
      out,
      new Map([
        ['192.168.1.100', new Set(['10.10.10.1'])],
        ['192.168.1.101', new Set(['10.10.10.1'])],
        ['192.168.1.103', new Set(['10.10.10.1'])],
      ]),
    );
    expect(Object.fromEntries(m)).toEqual({ '192.168.1.100': [own(1)], '192.168.1.101': [own(2, 100, '192.168.1.101')], '192.168.1.103': [] });
  });
  it('keeps the lines of the given sources bound to that IP; nothing else (other pods, other IPs, no SNAT, other protocols, noise)', () => {
    const out = [
      own(1),
      own(2, 100, '192.168.1.101'),
      own(3, 100, '192.168.1.100', '10.10.11.1'),
      own(4, 100, '192.168.1.100', '10.10.10.1', 'udp'),
      '-A -t 50 -u ASSURED -s 10.10.10.1 -d 8.8.8.8 -r 8.8.8.8 -q 10.10.10.1 -p tcp --sport 5 --dport 7007',
      'conntrack v1.4.7 (conntrack-tools): 6 flow entries have been shown.',
      `  ${own(6, 7)}  `,
      own(7, Number.NaN),
    ].join('\n');
    expect(keptBindingLines(out, '192.168.1.100', new Set(['10.10.10.1']))).toEqual([own(1), own(6, 7)]);
    expect(keptBindingLines(out, '192.168.1.100', new Set())).toEqual([]);
  });
  const local100 = new Map([
    ['10.10.10.1>8.8.8.0/24', 'egress:local@192.168.1.100'],
    ['10.10.10.1>8.8.4.0/24', 'other:local@192.168.1.101'],
    ['10.10.10.2>8.8.8.0/24', 'egress:route'],
  ]);
  it('loaded later, each timeout is what is left of it; entries the kernel would have expired are dropped', () => {
    const k = { lines: [own(1, 300), own(2, 5), own(3, 30)], at: 1_000 };
    expect(keptBindingsAt(k, '192.168.1.100', 1_000, local100)).toEqual([own(1, 300), own(2, 5), own(3, 30)]);
    // 10.2 s later counts as 11 s: never longer than the kernel would have kept it
    expect(keptBindingsAt(k, '192.168.1.100', 11_200, local100)).toEqual([own(1, 289), own(3, 19)]);
    expect(keptBindingsAt(k, '192.168.1.100', 400_000, local100)).toEqual([]);
    // a clock that went back loads them as listed
    expect(keptBindingsAt(k, '192.168.1.100', 0, local100)).toEqual(k.lines);
  });
  it('only for the pairs the take SNATs to that same IP: not a pod out of the policy (or gone), routed, or whose policy uses another IP now', () => {
    const k = {
      lines: [
        own(1),
        own(2, 431990, '192.168.1.100', '10.10.10.2'), // its pair is routed now
        own(3, 431990, '192.168.1.100', '10.10.10.3'), // in no policy (relabelled, or deleted and its IP reused)
        own(4, 431990, '192.168.1.100', '10.10.10.1', 'tcp', '8.8.4.4'), // that pair's policy SNATs to .101 now
        own(5, 431990, '192.168.1.100', '10.10.10.1', 'tcp', '1.1.1.1'), // a destination outside the policy
      ],
      at: 0,
    };
    expect(keptBindingsAt(k, '192.168.1.100', 0, local100)).toEqual([own(1)]);
    expect(keptBindingsAt(k, '192.168.1.101', 0, local100)).toEqual([]);
    expect(keptBindingsAt(k, '192.168.1.100', 0, new Map())).toEqual([]);
  });
  it('a second listing of the same release (a retried apply) adds to what the first kept: its lines first, older lines of other connections with their time since, expired ones dropped', () => {
    const first = { lines: [own(1, 300), own(2, 5), own(3, 300, '192.168.1.100', '10.10.11.1')], at: 1_000 };
    // the retry lists only the forwarded source (10.10.11.1), 10.2 s later (counts as 11 s)
    const m = mergeKept(first, [own(3, 290, '192.168.1.100', '10.10.11.1'), own(4, 100, '192.168.1.100', '10.10.11.1')], 11_200);
    expect(m).toEqual({ lines: [own(3, 290, '192.168.1.100', '10.10.11.1'), own(4, 100, '192.168.1.100', '10.10.11.1'), own(1, 289)], at: 11_200 });
    expect(mergeKept(undefined, [own(1)], 5)).toEqual({ lines: [own(1)], at: 5 });
  });
  it("another node's pod's pair is loaded when the take forwards it to that same IP (forwardedSnats), not otherwise", () => {
    const k = {
      lines: [
        own(1, 431990, '192.168.1.100', '10.10.11.1'), // forwarded to .100 again
        own(2, 431990, '192.168.1.100', '10.10.11.2'), // forwarded, but its policy SNATs to .101 now
        own(3, 431990, '192.168.1.100', '10.10.11.1', 'tcp', '1.1.1.1'), // a destination outside the policy
        own(4),
      ],
      at: 0,
    };
    const forwarded = new Map([
      ['10.10.11.1>8.8.8.0/24', 'egress@192.168.1.100'],
      ['10.10.11.2>8.8.8.0/24', 'other@192.168.1.101'],
    ]);
    expect(keptBindingsAt(k, '192.168.1.100', 0, new Map(), forwarded)).toEqual([own(1, 431990, '192.168.1.100', '10.10.11.1')]);
    expect(keptBindingsAt(k, '192.168.1.100', 0, local100, forwarded)).toEqual([own(1, 431990, '192.168.1.100', '10.10.11.1'), own(4)]);
    expect(keptBindingsAt(k, '192.168.1.101', 0, local100, forwarded)).toEqual([]);
  });
  it('the commit script loads them after conntrackd -c (an entry already there is fresher and wins), removes the file, and reports a failed load with exit 5', () => {
    expect(
      commitScript('conntrackd', '/c', 'conntrack', [['-D', '-q', '192.168.1.101']], { flush: [['-D', '-s', '10.10.10.1']], load: "/run/k'b" }).split('\n'),
    ).toEqual([
      "'conntrack' -R - >/dev/null 2>&1 <<'EOF' || { 'conntrack' '-D' '-s' '10.10.10.1' >/dev/null 2>&1; }",
      '-D -s 10.10.10.1',
      'EOF',
      "'conntrackd' -C '/c' -c || exit 3",
      "'conntrack' -R '/run/k'\\''b' >/dev/null 2>&1 || kept=failed",
      "rm -f '/run/k'\\''b'",
      "'conntrack' -R - >/dev/null 2>&1 <<'EOF' || { 'conntrack' '-D' '-q' '192.168.1.101' >/dev/null 2>&1; }",
      '-D -q 192.168.1.101',
      'EOF',
      '[ "$kept" = failed ] && exit 5',
      'exit 0',
    ]);
  });
  it('ConntrackSync.keep lists once through conntrack, for every IP; a failed listing keeps nothing (reported)', async () => {
    const f = new FakeHost();
    const logs: string[] = [];
    const cs = new ConntrackSync({ host: f, nodeIP: '192.168.1.1', uplink: 'eth0', log: (m) => logs.push(m) });
    f.onExec = (cmd) =>
      cmd === 'conntrack'
        ? { code: 0, stdout: `${own(1)}\n${own(2, 9, '192.168.1.100', '10.10.11.1')}\n${own(3, 9, '192.168.1.101')}\n`, stderr: '' }
        : undefined;
    const m = await cs.keep(
      new Map([
        ['192.168.1.100', new Set(['10.10.10.1'])],
        ['192.168.1.101', new Set(['10.10.10.1'])],
      ]),
    );
    expect(Object.fromEntries(m!)).toEqual({ '192.168.1.100': [own(1)], '192.168.1.101': [own(3, 9, '192.168.1.101')] });
    expect(f.calls).toEqual([{ op: 'conntrack', arg: '-L -p tcp -o save' }]);
    f.onExec = () => ({ code: 1, stdout: '', stderr: 'Operation not permitted' });
    expect(await cs.keep(new Map([['192.168.1.100', new Set(['10.10.10.1'])]]))).toBeNull();
    expect(cs.status().lastError?.message).toMatch(/listing this node's bindings failed \(exit 1\): Operation not permitted/);
    expect(logs.join('\n')).toMatch(/listing this node's bindings failed/);
  });
  it('ConntrackSync.loadKept loads without conntrackd (conntrack -R of a file it writes, then removes); a failure is reported', async () => {
    const f = new FakeHost();
    const logs: string[] = [];
    const cs = new ConntrackSync({ host: f, nodeIP: '192.168.1.1', uplink: 'eth0', log: (m) => logs.push(m) });
    expect(await cs.loadKept([own(1)])).toBe(true);
    expect(f.files.get('/run/egresslab/conntrackd/kept-bindings')).toBe(`${own(1)}\n`);
    expect(f.calls.at(-1)!.arg).toMatch(
      /^-c 'conntrack' -R '\/run\/egresslab\/conntrackd\/kept-bindings' .*rm -f '\/run\/egresslab\/conntrackd\/kept-bindings'; exit \$c$/,
    );
    f.onExec = () => ({ code: 2, stdout: '', stderr: '' });
    expect(await cs.loadKept([own(1)])).toBe(false);
    expect(logs.join('\n')).toMatch(/loading the kept bindings failed \(conntrack -R, exit 2\)/);
    expect(await cs.loadKept([])).toBe(false);
  });
});

describe('parsing conntrackd output', () => {
  it('counts cache entries, reads the last commit count, keeps the log tail', () => {
    const e =
      'tcp      6 ESTABLISHED src=10.10.12.1 dst=8.8.8.8 sport=40001 dport=7007 [ASSURED] [active since 3s]\nudp      17 src=10.10.10.1 dst=8.8.4.4 sport=5 dport=7007 [active since 1s]\n';
    expect(countCacheEntries(e)).toBe(2);
    expect(countCacheEntries('')).toBe(0);
    const log = '[x] [notice] Committed 0 new entries\n[y] [notice] commit has taken 0.000029 seconds\n[z] [notice] Committed 12 new entries\n';
    expect(committedFromLog(log)).toBe(12);
    expect(committedFromLog('nothing')).toBeNull();
    expect(logTail('a\n\n b \nc\n', 2)).toEqual(['b', 'c']);
  });
});

/** The fake Host as ConntrackSync sees it; `calls` is its record of the order of operations, one string each. */
function fakeIO(opts: { ctlFailsUntil?: number; commitCode?: number } = {}) {
  const host = new FakeHost({ sysctls: { 'net/netfilter/nf_conntrack_events': '2' } });
  const log = conntrackdPaths().log;
  const committed = (): ExecResult => {
    host.files.set(log, `${host.files.get(log) ?? ''}[n] Committed 3 new entries\n`);
    return { code: opts.commitCode ?? 0, stdout: '', stderr: opts.commitCode ? 'boom' : '' };
  };
  let ctlCalls = 0;
  host.onExec = (cmd, args) => {
    if (cmd === 'sh' && args[1]!.includes(' -c || exit 3')) return committed();
    if (cmd === 'conntrackd') {
      ctlCalls++;
      if (args.includes('-s') && ctlCalls <= (opts.ctlFailsUntil ?? 0)) return { code: 1, stdout: '', stderr: 'cannot connect' };
      if (args.includes('-c')) return committed();
    }
    return undefined;
  };
  host.cmdlines.set(777, 'conntrackd -C /run/egresslab/conntrackd/conntrackd.conf');
  host.cmdlines.set(778, 'sleep 100');
  // exec of conntrackd: its arguments without `-C <config>`
  const line = (c: { op: string; arg: string }): string => `${c.op} ${c.op === 'conntrackd' ? c.arg.replace(/^-C \S+ /, '') : c.arg}`;
  return {
    io: host,
    get calls(): string[] {
      return host.calls.map(line);
    },
    resetCalls: () => void (host.calls.length = 0),
    files: host.files,
    sysctl: host.sysctls,
    die: (code: number) => host.exitSpawned(code),
  };
}

describe('ConntrackSync (fake processes)', () => {
  const base = { nodeIP: '192.168.1.3', uplink: 'eth0', restartDelayMs: 5 };
  /** The config a ConntrackSync with `base` writes. */
  const baseConfig = renderConntrackdConfig(base);
  /** A conntrackd 777 a previous agent left: its pid file, its config and (unless not) its flushed marker. */
  const leftDaemon = (f: ReturnType<typeof fakeIO>, o: { config?: string; flushed?: boolean } = {}) => {
    const p = conntrackdPaths();
    f.files.set(p.pid, '777\n');
    f.files.set(p.config, o.config ?? baseConfig);
    if (o.flushed !== false) f.files.set(p.flushed, '777\n');
  };

  it('start: events off by default, config written, daemon spawned, startup dump flushed; stop restores', async () => {
    const f = fakeIO({ ctlFailsUntil: 2 });
    const logs: string[] = [];
    const s = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
    await s.start();
    expect(f.calls).toEqual([
      'sysctl net/netfilter/nf_conntrack_events=0',
      'spawn conntrackd -C /run/egresslab/conntrackd/conntrackd.conf',
      'conntrackd -s runtime', // not answering yet
      'conntrackd -s runtime',
      'conntrackd -s runtime',
      'conntrackd -f internal',
    ]);
    expect(f.files.get(conntrackdPaths().config)).toContain('IPv4_interface 192.168.1.3');
    expect(f.files.get(conntrackdPaths().pid)).toBe('4242\n');
    expect(s.status()).toMatchObject({ enabled: true, running: true, pid: 4242, starts: 1, commits: 0 });
    expect(logs.join('\n')).toMatch(/conntrackd running \(pid 4242, NOTRACK, multicast 225\.0\.0\.50:3780 on eth0 from 192\.168\.1\.3\)/);
    await s.stop();
    expect(f.calls.slice(-2)).toEqual(['kill SIGTERM', 'sysctl net/netfilter/nf_conntrack_events=2']);
    expect(s.status().running).toBe(false);
  });

  it('start gives up waiting for the control socket when the agent stops (its signal), and stop ends the daemon it spawned, even one asked to leave it (not up)', async () => {
    for (const opts of [{}, { leave: true }]) {
      const f = fakeIO({ ctlFailsUntil: Number.MAX_SAFE_INTEGER }); // conntrackd never answers
      const stopping = new AbortController();
      // an hour to answer: without the signal, start() would still be waiting when the test times out
      const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined, readyTimeoutMs: 3_600_000, signal: stopping.signal });
      const started = s.start();
      await vi.waitFor(() => expect(f.calls.filter((c) => c === 'conntrackd -s runtime').length).toBeGreaterThanOrEqual(2));
      stopping.abort();
      await expect(started).rejects.toBeInstanceOf(ConntrackStartAbandoned);
      expect(s.status()).toMatchObject({ running: false, starts: 1 });
      expect(await s.stop(opts)).toBeNull();
      expect(f.calls.slice(-2), JSON.stringify(opts)).toEqual(['kill SIGTERM', 'sysctl net/netfilter/nf_conntrack_events=2']);
    }
    // told to stop before it started: nothing spawned
    const g = fakeIO();
    const t = new ConntrackSync({ ...base, host: g.io, log: () => undefined, signal: AbortSignal.abort() });
    await expect(t.start()).rejects.toBeInstanceOf(ConntrackStartAbandoned);
    expect(g.calls.filter((c) => c.startsWith('spawn'))).toEqual([]);
    await t.stop();
  });

  it('commit: conntrackd -c, then the bindings of floating IPs held elsewhere go; counted in the status', async () => {
    const f = fakeIO();
    const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined });
    await s.start();
    f.resetCalls();
    const r = await s.commit(['192.168.1.100', '192.168.1.101'], ['192.168.1.100']);
    expect(r).toMatchObject({ ok: true, entries: 3 });
    expect(f.calls).toEqual([`sh -c ${commitScript('conntrackd', conntrackdPaths().config, 'conntrack', [['-D', '-q', '192.168.1.101']])}`]);
    expect(s.status()).toMatchObject({ commits: 1, lastCommitEntries: 3, purges: 1, lastError: null });
    await s.stop();
  });

  it("commit with nft steps: pre before the shell (best effort), post after it through the host's nft apply; post's failure is postFailed, a failed commit applies no post", async () => {
    const f = fakeIO();
    const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined });
    await s.start();
    f.resetCalls();
    const pre = 'insert rule ip egresslab_gw prerouting drop\n';
    const post = 'delete chain ip egresslab_gw takeover_window\n';
    expect(await s.commit(['192.168.1.100'], ['192.168.1.100'], { pre, post })).toEqual({ ok: true, ms: expect.any(Number), entries: 3 });
    expect(f.calls).toEqual([`nft ${pre}`, `sh -c ${commitScript('conntrackd', conntrackdPaths().config, 'conntrack', [])}`, `nft ${post}`]);
    // a refused pre does not stop the commit; a refused post is reported to the caller
    f.resetCalls();
    f.io.failNextApply('refused');
    expect(await s.commit(['192.168.1.100'], ['192.168.1.100'], { pre })).toMatchObject({ ok: true });
    f.io.failNextApply('refused');
    expect(await s.commit(['192.168.1.100'], ['192.168.1.100'], { post })).toMatchObject({ ok: true, postFailed: true });
    await s.stop();
    const failing = fakeIO({ commitCode: 3 });
    const t = new ConntrackSync({ ...base, host: failing.io, log: () => undefined });
    await t.start();
    failing.resetCalls();
    expect(await t.commit(['192.168.1.100'], ['192.168.1.100'], { post })).toMatchObject({ ok: false });
    expect(failing.calls.filter((c) => c.startsWith('nft'))).toEqual([]);
    await t.stop();
  });

  it('commit with kept bindings: they are written to a file in the run directory and loaded in the same shell; none given, no file', async () => {
    const f = fakeIO();
    const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined });
    await s.start();
    f.resetCalls();
    const kept = `${conntrackdPaths().config.replace(/conntrackd\.conf$/, '')}kept-bindings`;
    const lines = [
      '-A -t 9 -s 10.10.10.1 -d 8.8.8.8 -n 192.168.1.100 -p tcp --sport 1 --dport 7007',
      '-A -t 8 -s 10.10.10.1 -d 8.8.8.8 -n 192.168.1.100 -p tcp --sport 2 --dport 7007',
    ];
    expect(await s.commit(['192.168.1.100'], ['192.168.1.100'], { load: lines })).toMatchObject({ ok: true });
    expect(f.files.get(kept)).toBe(`${lines.join('\n')}\n`);
    expect(f.calls).toEqual([`sh -c ${commitScript('conntrackd', conntrackdPaths().config, 'conntrack', [], { load: kept })}`]);
    f.files.delete(kept);
    f.resetCalls();
    await s.commit(['192.168.1.100'], ['192.168.1.100'], { load: [] });
    expect(f.calls[0]).not.toContain(' -R ');
    expect(f.files.has(kept)).toBe(false);
    await s.stop();
  });

  it('a failed load of the kept bindings (exit 5) is reported, the commit itself stands', async () => {
    const f = fakeIO({ commitCode: 5 });
    const logs: string[] = [];
    const s = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
    await s.start();
    expect(await s.commit(['192.168.1.100'], ['192.168.1.100'], { load: ['-A -t 9 -s 10.10.10.1'] })).toMatchObject({ ok: true, loadFailed: true });
    expect(s.status()).toMatchObject({ commits: 1 });
    expect(logs.join('\n')).toMatch(/loading the kept bindings failed/);
    await s.stop();
  });

  it('bulk send: conntrackd -B re-sends the cache (counted); nothing while the daemon is not running', async () => {
    const f = fakeIO();
    const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined });
    expect(await s.bulkSend()).toBe(false);
    expect(f.calls).toEqual([]);
    await s.start();
    f.resetCalls();
    expect(await s.bulkSend()).toBe(true);
    expect(f.calls).toEqual(['conntrackd -B']);
    expect(s.status()).toMatchObject({ bulkSends: 1, lastError: null });
    await s.stop();
    expect(await s.bulkSend()).toBe(false);
  });

  it('a failed commit is reported, never thrown; no commit while the daemon is down', async () => {
    const f = fakeIO({ commitCode: 1 });
    const logs: string[] = [];
    const s = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
    expect(await s.commit(['192.168.1.100'], [])).toMatchObject({ ok: false });
    expect(logs.at(-1)).toBe('conntrack sync: commit skipped: conntrackd is not running');
    await s.start();
    expect(await s.commit(['192.168.1.100'], ['192.168.1.100'])).toMatchObject({ ok: false });
    expect(s.status().lastError?.message).toBe('commit failed (exit 1): boom');
    await s.stop();
  });

  it('an unexpected exit is logged with the log tail and the daemon restarted', async () => {
    const f = fakeIO();
    const logs: string[] = [];
    const s = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
    await s.start();
    f.files.set(conntrackdPaths().log, "[e] [ERROR] can't open multicast server\n");
    f.die(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(logs.some((l) => /conntrackd exited \(code 1\); restarting; its log ends with: \[e\] \[ERROR\] can't open multicast server/.test(l))).toBe(true);
    expect(s.status()).toMatchObject({ starts: 2, unexpectedExits: 1, running: true });
    await s.stop();
  });

  it('reaps a conntrackd left by an agent that died while starting it (never flushed) only when the pid file AND its command line say so', async () => {
    for (const [pid, killed] of [
      [777, true],
      [778, false],
    ] as const) {
      const f = fakeIO();
      f.files.set(conntrackdPaths().pid, `${pid}\n`);
      // everything but the flushed marker agrees: not adoptable
      f.files.set(conntrackdPaths().config, baseConfig);
      const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined });
      await s.start();
      expect(f.calls.includes(`killPid ${pid} SIGKILL`)).toBe(killed);
      await s.stop();
    }
  });

  it('a clean stop leaves the daemon running for the next agent, which adopts it: no spawn, no flush, its caches kept (chaos seed 848038224)', async () => {
    const f = fakeIO();
    const logs: string[] = [];
    const first = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
    await first.start();
    const p = conntrackdPaths();
    expect(f.files.get(p.eventsBeforeFile)).toBe('2\n');
    f.resetCalls();
    await first.stop({ leave: true });
    // nothing killed, nothing removed, events left off for the next agent
    expect(f.calls).toEqual([]);
    expect(f.files.get(p.pid)).toBe('4242\n');
    expect(f.sysctl.get('net/netfilter/nf_conntrack_events')).toBe('0');
    expect(first.status()).toMatchObject({ running: false, pid: null });
    expect(logs.at(-1)).toBe('conntrack sync: conntrackd left running for the next agent (pid 4242): its caches outlive this agent');
    // the next agent: pid file, command line, config and socket all agree
    f.io.cmdlines.set(4242, `conntrackd -C ${p.config}`);
    const next = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
    await next.start();
    expect(f.calls).toEqual(['conntrackd -s runtime']);
    expect(next.status()).toMatchObject({ running: true, pid: 4242, adopted: true, adoptions: 1, starts: 0 });
    expect(logs.at(-1)).toBe('conntrack sync: adopted the conntrackd the previous agent left running (pid 4242): its caches are kept');
    // an adopted daemon is used like a spawned one
    expect(await next.bulkSend()).toBe(true);
    expect(await next.commit(['192.168.1.100'], ['192.168.1.100'])).toMatchObject({ ok: true });
    // a stop for good (removeRulesOnStop) ends it by pid and puts the events back as the first agent found them
    f.resetCalls();
    f.io.onExec = null;
    const killed = new Promise<void>((r) => setTimeout(() => (f.io.cmdlines.delete(4242), r()), 30));
    await next.stop();
    await killed;
    expect(f.calls).toEqual(['killPid 4242 SIGTERM', 'sysctl net/netfilter/nf_conntrack_events=2']);
    expect([p.pid, p.eventsBeforeFile].map((x) => f.files.has(x))).toEqual([false, false]);
  });

  it('does not adopt a daemon with another config, one that does not answer, or one never flushed: it is replaced', async () => {
    const messages = {
      'another config': /\(pid 777\) has another config: replacing it/,
      'not answering': /\(pid 777\) does not answer on .*conntrackd\.ctl: replacing it/,
      'never flushed': /\(pid 777\) was never flushed \(its agent died while starting it\): replacing it/,
    };
    for (const why of ['another config', 'not answering', 'never flushed'] as const) {
      const f = fakeIO({ ctlFailsUntil: why === 'not answering' ? 1 : 0 });
      const p = conntrackdPaths();
      leftDaemon(f, { ...(why === 'another config' ? { config: 'General {}\n' } : {}), flushed: why !== 'never flushed' });
      const logs: string[] = [];
      const s = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
      await s.start();
      expect(
        f.calls.filter((c) => c.startsWith('killPid') || c.startsWith('spawn')),
        why,
      ).toEqual(['killPid 777 SIGKILL', 'spawn conntrackd -C /run/egresslab/conntrackd/conntrackd.conf']);
      expect(logs[0], why).toMatch(messages[why]);
      // the new daemon is flushed, and marked so for the next agent
      expect(f.files.get(p.flushed), why).toBe('4242\n');
      expect(s.status(), why).toMatchObject({ adopted: false, adoptions: 0, starts: 1, pid: 4242 });
      await s.stop();
    }
  });

  it('an adopted daemon that goes away is noticed (no exit event: its pid is watched) and a new one spawned', async () => {
    const f = fakeIO();
    leftDaemon(f);
    const logs: string[] = [];
    const s = new ConntrackSync({ ...base, host: f.io, log: (m) => logs.push(m) });
    await s.start();
    expect(s.status()).toMatchObject({ adopted: true, pid: 777 });
    f.io.cmdlines.delete(777);
    await vi.waitFor(() => expect(s.status()).toMatchObject({ running: true, adopted: false, pid: 4242, starts: 1, unexpectedExits: 1 }), { timeout: 2000 });
    expect(logs.some((l) => l.startsWith('conntrack sync: conntrackd (pid 777, adopted) exited; restarting'))).toBe(true);
    await s.stop();
  });

  it('sync off: a conntrackd left running by a previous agent is stopped and the events put back; anything else is left alone', async () => {
    const f = fakeIO();
    const p = conntrackdPaths();
    f.files.set(p.pid, '777\n');
    f.files.set(p.eventsBeforeFile, '2\n');
    f.sysctl.set('net/netfilter/nf_conntrack_events', '0');
    const logs: string[] = [];
    await stopLeftoverConntrackd(f.io, (m) => logs.push(m));
    expect(f.calls).toEqual(['killPid 777 SIGKILL', 'sysctl net/netfilter/nf_conntrack_events=2']);
    expect(logs).toEqual(['conntrack sync is off: stopping the conntrackd a previous agent left running (pid 777)']);
    expect([p.pid, p.eventsBeforeFile].map((x) => f.files.has(x))).toEqual([false, false]);
    // a pid file naming another process (a reused pid): nothing killed, nothing logged
    const g = fakeIO();
    g.files.set(p.pid, '778\n');
    const glogs: string[] = [];
    await stopLeftoverConntrackd(g.io, (m) => glogs.push(m));
    expect(g.calls.filter((c) => c.startsWith('killPid'))).toEqual([]);
    expect(glogs).toEqual([]);
  });

  it('a start abandoned while it checks a leftover daemon leaves the events off while that daemon runs (it would learn every connection)', async () => {
    const f = fakeIO();
    const p = conntrackdPaths();
    leftDaemon(f);
    f.files.set(p.eventsBeforeFile, '2\n');
    f.sysctl.set('net/netfilter/nf_conntrack_events', '0');
    const stopping = new AbortController();
    // the agent is told to stop while the leftover daemon answers its check
    const answer = f.io.onExec!;
    f.io.onExec = (cmd, args) => {
      if (cmd === 'conntrackd' && args.includes('-s')) stopping.abort();
      return answer(cmd, args);
    };
    const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined, signal: stopping.signal });
    await expect(s.start()).rejects.toBeInstanceOf(ConntrackStartAbandoned);
    await s.stop();
    expect(f.sysctl.get('net/netfilter/nf_conntrack_events')).toBe('0');
    expect(f.files.get(p.eventsBeforeFile)).toBe('2\n');
    expect(f.calls.filter((c) => c.startsWith('kill'))).toEqual([]);
  });

  it('refuses to start without conntrack events in the kernel', async () => {
    const f = fakeIO();
    f.sysctl.clear();
    const s = new ConntrackSync({ ...base, host: f.io, log: () => undefined });
    await expect(s.start()).rejects.toThrow('cannot read /proc/sys/net/netfilter/nf_conntrack_events (no conntrack events in this kernel?)');
  });
});
