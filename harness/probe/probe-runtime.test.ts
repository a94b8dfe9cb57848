/**
 * probe() against a fake lab runtime (harness/lab/runtime.ts): which evidence it reports — the
 * reply's word, or the far end's capture log — with no container started.
 */
import { describe, expect, it } from 'vitest';
import { topologyFromArg } from '../topology/load.js';
import { planLab, INTERNET } from '../topology/plan.js';
import { LabError } from '../util/errors.js';
import { TCP_FLAGS } from '../pcap/pcap.js';
import type { ExecOptions, ExecResult } from '../docker/exec.js';
import type { LabRuntime, Place } from '../lab/runtime.js';
import type { ClientRecord, Observation, CaptureStats, ProbeClientOptions } from '../inlab/protocol.js';
import { ContinuousProbe, probe } from './probe.js';
import type { HelperChannel } from '../lab/helper-channel.js';

const plan = planLab(topologyFromArg('default'));
const FROM = 'default/client-1';

interface Call {
  container: string;
  netns?: string;
  cmd: string[];
}

/**
 * A runtime whose probe client answers `client(args)` and whose far-end log holds `log(args, t0)`
 * (the observation lines, as the responder writes them). No helper: every call is an exec.
 */
function fakeRuntime(
  client: (a: ProbeClientOptions) => Partial<ClientRecord>,
  log: (a: ProbeClientOptions, t0: number) => (Observation | CaptureStats)[] = () => [],
) {
  const calls: Call[] = [];
  let args: ProbeClientOptions | undefined;
  const rt: LabRuntime = {
    id: 'fake',
    plan,
    topology: plan.topology,
    place: (name: string): Place => {
      const pod = plan.pods.find((p) => p.key === name)!;
      return { container: pod.node, netns: pod.netns!, label: pod.key };
    },
    async exec(where: string | Place, cmd: string[], _options?: ExecOptions): Promise<ExecResult> {
      const place = typeof where === 'string' ? { container: where, label: where } : where;
      calls.push({ container: place.container, ...(place.netns ? { netns: place.netns } : {}), cmd });
      if (cmd[1]?.endsWith('probe-client.js')) {
        args = JSON.parse(cmd[2]!) as ProbeClientOptions;
        const rec: ClientRecord = { seq: 0, t: Date.now(), replied: false, ...client(args) };
        return { exitCode: 0, stdout: `${JSON.stringify(rec)}\n`, stderr: '' };
      }
      if (cmd[0] === 'grep') {
        const needles = cmd.filter((_, i) => cmd[i - 1] === '-e');
        const lines = log(args!, Date.now() - 100)
          .map((o) => JSON.stringify(o))
          .filter((l) => needles.some((n) => l.includes(n)));
        return { exitCode: lines.length ? 0 : 1, stdout: lines.join('\n'), stderr: '' };
      }
      throw new Error(`unexpected command ${JSON.stringify(cmd)}`);
    },
    spawn: () => Promise.reject(new Error('not used')),
    helper: () => Promise.resolve(undefined),
  };
  return { rt, calls, grepped: () => calls.filter((c) => c.cmd[0] === 'grep') };
}

const udpSeen = (a: ProbeClientOptions, t: number, src: string): Observation => ({
  t,
  p: 'udp',
  src,
  dst: a.to,
  sport: 40_000,
  dport: a.port,
  tok: a.token,
  pseq: 0,
});

describe('probe() against a fake runtime: the reply or the capture', () => {
  it('a reply that names the source is the evidence: the capture log is not read', async () => {
    const f = fakeRuntime(() => ({ replied: true, rttMs: 0.5, observedSource: '192.168.1.1', observedPort: 40_000 }));
    const r = await probe(f.rt, FROM, '8.8.8.8', { proto: 'udp' });
    expect(r).toMatchObject({
      from: FROM,
      to: '8.8.8.8',
      proto: 'udp',
      replyReceived: true,
      observedSource: '192.168.1.1',
      observedPort: 40_000,
      observedBy: INTERNET,
      evidence: 'reply',
      rttMs: 0.5,
    });
    expect(f.grepped()).toEqual([]);
    // the client ran in the pod's netns on its node
    const pod = plan.pods.find((p) => p.key === FROM)!;
    expect(f.calls[0]).toMatchObject({ container: pod.node, netns: pod.netns });
  });

  it("no reply: the far end's capture log says which source the probe left with", async () => {
    const f = fakeRuntime(
      () => ({ replied: false, error: 'timeout' }),
      (a, t) => [udpSeen(a, t, '10.10.10.2')],
    );
    const r = await probe(f.rt, FROM, '8.8.8.8', { proto: 'udp', timeoutMs: 50 });
    expect(r).toMatchObject({
      replyReceived: false,
      observedSource: '10.10.10.2',
      observedPort: 40_000,
      observedBy: INTERNET,
      evidence: 'capture',
      error: 'timeout',
    });
    expect(r.observedSources).toBeUndefined();
    expect(f.grepped()[0]).toMatchObject({ container: INTERNET });
  });

  it('ICMP: the reply carries no source, so the capture is the evidence even when answered', async () => {
    const f = fakeRuntime(
      () => ({ replied: true, rttMs: 1 }),
      (a, t) => [{ t, p: 'icmp', src: '192.168.1.1', dst: a.to, id: 7, seq: 0, tok: a.token }],
    );
    const r = await probe(f.rt, FROM, '8.8.8.8', { proto: 'icmp' });
    expect(r).toMatchObject({ replyReceived: true, observedSource: '192.168.1.1', evidence: 'capture' });
    expect(r.port).toBeUndefined();
  });

  it('a probe seen with two sources lists both (it matches no single expected source)', async () => {
    const f = fakeRuntime(
      () => ({ replied: false }),
      (a, t) => [udpSeen(a, t, '10.10.10.2'), udpSeen(a, t + 1, '192.168.1.1')],
    );
    const r = await probe(f.rt, FROM, '8.8.8.8', { proto: 'udp', timeoutMs: 50 });
    expect(r).toMatchObject({ observedSource: '10.10.10.2', evidence: 'capture', observedSources: ['10.10.10.2', '192.168.1.1'] });
  });

  it('TCP without a reply: its own connection (by local port) in the log, SYN first', async () => {
    const f = fakeRuntime(
      () => ({ replied: false, localPort: 41_000 }),
      (a, t) => [
        { t, p: 'tcp', src: '10.10.10.9', dst: a.to, sport: 39_000, dport: a.port, k: `tcp ${a.to}:${a.port}`, f: TCP_FLAGS.SYN },
        { t: t + 1, p: 'tcp', src: '192.168.1.1', dst: a.to, sport: 41_000, dport: a.port, k: `tcp ${a.to}:${a.port}`, f: TCP_FLAGS.SYN },
      ],
    );
    const r = await probe(f.rt, FROM, '8.8.8.8', { proto: 'tcp', port: 443, timeoutMs: 50 });
    expect(r).toMatchObject({ port: 443, observedSource: '192.168.1.1', observedPort: 41_000, evidence: 'capture' });
  });

  it('nothing observed and no reply: no source, no evidence', async () => {
    const f = fakeRuntime(() => ({ replied: false }));
    const r = await probe(f.rt, FROM, '8.8.8.8', { proto: 'udp', timeoutMs: 50 });
    expect(r.replyReceived).toBe(false);
    expect(r.observedSource).toBeUndefined();
    expect(r.evidence).toBeUndefined();
  }, 10_000);

  it('a capture that dropped packets voids the verdict', async () => {
    const f = fakeRuntime(
      () => ({ replied: false }),
      (a, t) => [udpSeen(a, t, '10.10.10.2'), { t, p: 'stats', drops: 3, total: 3, pending: 0 }],
    );
    await expect(probe(f.rt, FROM, '8.8.8.8', { proto: 'udp', timeoutMs: 50 })).rejects.toThrow(LabError);
  });

  it('an address nothing in the lab answers for: the reply alone (no log to read)', async () => {
    const f = fakeRuntime(() => ({ replied: false }));
    const r = await probe(f.rt, FROM, '192.168.1.99', { proto: 'udp', timeoutMs: 50 });
    expect(r).toMatchObject({ replyReceived: false });
    expect(r.observedBy).toBeUndefined();
    expect(f.grepped()).toEqual([]);
  });
});

describe('ContinuousProbe.halt: read a probe before its node goes down', () => {
  it('stops the probe and keeps its records; stop() later builds the timeline from them, though the node lost its file', async () => {
    let file = [1, 2, 3].map((seq) => JSON.stringify({ seq, t: 1000 + seq * 100, replied: true })).join('\n');
    const stops: string[] = [];
    const helper = {
      alive: true,
      startProbe: async () => undefined,
      stopProbe: async (token: string) => void stops.push(token),
    } as unknown as HelperChannel;
    const rt: LabRuntime = {
      id: 'fake',
      plan,
      topology: plan.topology,
      place: (name: string): Place => {
        const pod = plan.pods.find((p) => p.key === name)!;
        return { container: pod.node, netns: pod.netns!, label: pod.key };
      },
      async exec(_where: string | Place, cmd: string[]): Promise<ExecResult> {
        if (cmd[0] === 'mkdir') return { exitCode: 0, stdout: '', stderr: '' };
        if (cmd[0] === 'cat') return { exitCode: file ? 0 : 1, stdout: file, stderr: '' };
        throw new Error(`unexpected command ${JSON.stringify(cmd)}`);
      },
      spawn: () => Promise.reject(new Error('not used')),
      helper: () => Promise.resolve(helper),
    };
    // an address nothing in the lab owns: no far end to read, the records are the whole timeline
    const p = await ContinuousProbe.start(rt, FROM, '192.168.1.77', { proto: 'udp', intervalMs: 100 });
    expect((await p.halt()).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(await p.halt()).toHaveLength(3);
    expect(stops).toEqual([p.token]);
    file = ''; // the node was killed and booted again: /run is empty
    const t = await p.stop();
    expect(t.packets.map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(stops).toHaveLength(1);
  });
});
