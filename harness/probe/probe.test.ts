import { describe, expect, it } from 'vitest';
import { LabError, ValidationError } from '../util/errors.js';
import { TCP_FLAGS } from '../pcap/pcap.js';
import type { CaptureStats, Observation } from '../inlab/protocol.js';
import {
  assertNoCaptureDrops,
  checkContinuousProbeArgs,
  checkProbeArgs,
  ownObservation,
  STATS_AFTER_MS,
  statsCover,
  type ContinuousProbeOptions,
  type ProbeOptions,
} from './probe.js';

function refusal(to: string, options: ProbeOptions): ValidationError {
  try {
    checkProbeArgs(to, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error(`expected checkProbeArgs(${to}, ${JSON.stringify(options)}) to refuse`);
}

describe('checkProbeArgs', () => {
  it('accepts good arguments', () => {
    expect(() => checkProbeArgs('8.8.8.8', {})).not.toThrow();
    expect(() => checkProbeArgs('10.10.10.2', { proto: 'udp', port: 1, timeoutMs: 1 })).not.toThrow();
    expect(() => checkProbeArgs('172.16.100.10', { proto: 'tcp', port: 65535, timeoutMs: 60_000 })).not.toThrow();
    expect(() => checkProbeArgs('1.1.1.1', { proto: 'icmp' })).not.toThrow();
  });

  it.each([
    ['to: a name', 'example.com', {}, '--to', 'example.com'],
    ['to: IPv6', '2001:db8::1', {}, '--to', '2001:db8::1'],
    ['to: a CIDR', '10.0.0.0/8', {}, '--to', '10.0.0.0/8'],
    ['to: leading zeros', '010.0.0.1', {}, '--to', '010.0.0.1'],
    ['to: empty', '', {}, '--to', ''],
    ['proto: sctp', '8.8.8.8', { proto: 'sctp' }, '--proto', 'sctp'],
    ['proto: upper case', '8.8.8.8', { proto: 'TCP' }, '--proto', 'TCP'],
    ['port: 0', '8.8.8.8', { port: 0 }, '--port', 0],
    ['port: 65536', '8.8.8.8', { port: 65536 }, '--port', 65536],
    ['port: negative', '8.8.8.8', { port: -1 }, '--port', -1],
    ['port: fractional', '8.8.8.8', { port: 80.5 }, '--port', 80.5],
    ['port: NaN', '8.8.8.8', { port: Number.NaN }, '--port', Number.NaN],
    ['timeoutMs: 0', '8.8.8.8', { timeoutMs: 0 }, 'timeoutMs', 0],
    ['timeoutMs: negative', '8.8.8.8', { timeoutMs: -5 }, 'timeoutMs', -5],
    ['timeoutMs: too long', '8.8.8.8', { timeoutMs: 60_001 }, 'timeoutMs', 60_001],
    ['timeoutMs: NaN', '8.8.8.8', { timeoutMs: Number.NaN }, 'timeoutMs', Number.NaN],
  ] as const)('%s is refused, naming the field', (_name, to, options, path, value) => {
    const e = refusal(to, options as ProbeOptions);
    expect(e.source).toBe('probe');
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]!.path).toBe(path);
    expect(e.issues[0]!.value).toBe(value);
    expect(e.message).toMatch(new RegExp(`^probe: ${path}: `));
  });

  it('reports every bad field at once', () => {
    const e = refusal('nowhere', { proto: 'gre' as never, port: 0, timeoutMs: 0 });
    expect(e.issues.map((i) => i.path)).toEqual(['--to', '--proto', '--port', 'timeoutMs']);
    expect(e.message.split('\n')).toHaveLength(4);
  });
});

describe('checkContinuousProbeArgs', () => {
  it('accepts stream options for TCP', () => {
    expect(() => checkContinuousProbeArgs('8.8.8.8', { proto: 'tcp', stream: true, intervalMs: 50, timeoutMs: 300 })).not.toThrow();
    expect(() => checkContinuousProbeArgs('8.8.8.8', { proto: 'tcp', stream: true, reconnect: true, localPort: 40001 })).not.toThrow();
    expect(() => checkContinuousProbeArgs('8.8.8.8', { intervalMs: 20, count: 5 })).not.toThrow();
  });

  it.each([
    ['stream over UDP (the default proto)', { stream: true }, 'stream', /TCP only \(proto is udp\)/],
    ['stream over ICMP', { proto: 'icmp', stream: true }, 'stream', /TCP only/],
    ['reconnect without stream', { proto: 'tcp', reconnect: true }, 'reconnect', /needs stream/],
    ['localPort without stream', { proto: 'tcp', localPort: 40001 }, 'localPort', /needs stream/],
    ['localPort out of range', { proto: 'tcp', stream: true, localPort: 70000 }, 'localPort', /1-65535/],
    ['intervalMs 0', { intervalMs: 0 }, 'intervalMs', /between 1 and/],
    ['count 0', { count: 0 }, 'count', /positive/],
  ] as [string, ContinuousProbeOptions, string, RegExp][])('refuses %s', (_name, options, path, message) => {
    let err: unknown;
    try {
      checkContinuousProbeArgs('8.8.8.8', options);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    const issues = (err as ValidationError & { issues: { path: string; message: string }[] }).issues;
    expect(
      issues.some((i) => i.path === path && message.test(i.message)),
      JSON.stringify(issues),
    ).toBe(true);
  });
});

describe("what the far end's capture log says about a probe", () => {
  const T0 = 1_700_000_000_000;
  const stat = (t: number, drops = 0, pending = 0): CaptureStats => ({ t, p: 'stats', drops, total: drops, pending });
  const { SYN, ACK, PSH, FIN } = TCP_FLAGS;
  const tcp = (src: string, sport: number, f: number, t = T0): Observation => ({
    t,
    p: 'tcp',
    src,
    dst: '8.8.8.8',
    sport,
    dport: 443,
    k: 'tcp 8.8.8.8:443',
    f,
  });

  it('assertNoCaptureDrops: any drop in the window voids the verdict, naming the place and the count', () => {
    expect(() => assertNoCaptureDrops([], 'internet')).not.toThrow();
    expect(() => assertNoCaptureDrops([stat(T0), stat(T0 + 300)], 'internet')).not.toThrow();
    let err: unknown;
    try {
      assertNoCaptureDrops([stat(T0), stat(T0 + 300, 2), stat(T0 + 900, 1)], 'internet');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LabError);
    expect((err as Error).message).toBe("the far end's capture at internet dropped 3 packets: the verdict is void");
    expect(() => assertNoCaptureDrops([stat(T0, 1)], 'vpc')).toThrow("the far end's capture at vpc dropped 1 packet: the verdict is void");
  });

  it('statsCover: statistics asked for STATS_AFTER_MS after the last packet, with nothing pending', () => {
    expect(statsCover([stat(T0 + 100), stat(T0 + STATS_AFTER_MS, 0, 1)], T0)).toBeUndefined();
    expect(statsCover([stat(T0 + 100), stat(T0 + STATS_AFTER_MS, 0, 1), stat(T0 + 1000)], T0)).toEqual(stat(T0 + 1000));
    expect(statsCover([stat(T0 + STATS_AFTER_MS)], T0)).toEqual(stat(T0 + STATS_AFTER_MS));
    expect(statsCover([], T0)).toBeUndefined();
  });

  it("ownObservation: TCP takes its own connection's SYN, and reports every source its segments had", () => {
    const seen = [tcp('192.168.1.1', 50_000, SYN), tcp('10.10.10.2', 40_001, ACK), tcp('192.168.1.100', 40_001, SYN), tcp('192.168.1.100', 40_001, ACK | PSH)];
    expect(ownObservation('tcp', seen, 40_001)).toEqual({ mine: seen[2], sources: ['192.168.1.100', '10.10.10.2'] });
    const clean = [tcp('192.168.1.100', 40_001, SYN), tcp('192.168.1.100', 40_001, ACK), tcp('192.168.1.100', 40_001, ACK | FIN)];
    expect(ownObservation('tcp', clean, 40_001)).toEqual({ mine: clean[0], sources: ['192.168.1.100'] });
  });

  it('ownObservation: without its local port (the connection never opened), the first SYN and its connection', () => {
    const seen = [tcp('10.10.10.2', 40_001, ACK), tcp('10.10.10.2', 40_002, SYN), tcp('10.10.10.2', 40_002, SYN), tcp('192.168.1.1', 40_003, SYN)];
    expect(ownObservation('tcp', seen, undefined)).toEqual({ mine: seen[1], sources: ['10.10.10.2'] });
    // its port, but the far end saw another one (NAT): as before, the first SYN logged
    expect(ownObservation('tcp', seen, 41_000)?.mine).toBe(seen[1]);
    expect(ownObservation('tcp', [], 40_001)).toBeUndefined();
  });

  it('ownObservation: UDP and ICMP records carry the probe token; two sources are both reported', () => {
    const u = (src: string): Observation => ({ t: T0, p: 'udp', src, dst: '8.8.8.8', sport: 40_001, dport: 7007, tok: 'x', pseq: 1 });
    expect(ownObservation('udp', [u('10.10.10.2'), u('10.10.10.2')], 40_001)).toEqual({ mine: u('10.10.10.2'), sources: ['10.10.10.2'] });
    expect(ownObservation('udp', [u('10.10.10.2'), u('192.168.1.1')], undefined)?.sources).toEqual(['10.10.10.2', '192.168.1.1']);
  });
});
