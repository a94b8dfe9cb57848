import { describe, expect, it } from 'vitest';
import { arpClaimsOf, overlappingClaims } from './segment-arp.js';
import type { DecodedPacket } from '../pcap/pcap.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

describe('overlappingClaims', () => {
  it('finds nothing when one owner hands over to another and never answers again', () => {
    const claims = [0, 50, 100, 150].map((t) => ({ t, mac: A })).concat([400, 450, 500].map((t) => ({ t, mac: B })));
    expect(overlappingClaims(claims, 50)).toEqual([]);
    expect(overlappingClaims([], 50)).toEqual([]);
  });
  it('reports the old owner answering after the new one took over', () => {
    const claims = [
      { t: 0, mac: A },
      { t: 400, mac: B },
      { t: 600, mac: A },
    ];
    expect(overlappingClaims(claims, 50)).toEqual([`${A} answered at 600 ms, ${B} had answered at 400 ms`]);
  });
  it('reports one request answered by two MACs (within one asking period)', () => {
    const claims = [
      { t: 1000, mac: A },
      { t: 1010, mac: B },
    ];
    expect(overlappingClaims(claims, 50)).toEqual([`${A} answered at 0 ms, ${B} had answered at 10 ms`]);
  });
});

describe('arpClaimsOf', () => {
  const arp = (t: number, op: number, senderIp: string, senderMac: string, targetIp: string): DecodedPacket => ({
    t,
    direction: 'in',
    arp: { op, senderIp, senderMac, targetIp },
  });
  it('counts every frame sent from the IP (replies, announcements, requests), not those asking for it, probes or other IPs', () => {
    const packets = [
      arp(1, 1, '192.168.1.10', '02:00:00:00:00:10', '192.168.1.100'), // who-has the IP: not a claim
      arp(2, 2, '192.168.1.100', '02:00:00:00:00:AA', '192.168.1.10'), // reply: a claim
      arp(3, 1, '192.168.1.100', '02:00:00:00:00:BB', '192.168.1.100'), // gratuitous request: a claim
      arp(4, 2, '192.168.1.101', '02:00:00:00:00:CC', '192.168.1.10'), // another IP's reply
      arp(5, 1, '192.168.1.100', '02:00:00:00:00:DD', '192.168.1.1'), // a request made from the IP: a claim
      arp(6, 1, '0.0.0.0', '02:00:00:00:00:EE', '192.168.1.100'), // a probe for it: no claim
      { t: 7, direction: 'in' as const },
    ];
    expect(arpClaimsOf(packets, '192.168.1.100')).toEqual([
      { t: 2, mac: '02:00:00:00:00:aa' },
      { t: 3, mac: '02:00:00:00:00:bb' },
      { t: 5, mac: '02:00:00:00:00:dd' },
    ]);
  });
});
