import { describe, expect, it } from 'vitest';
import type { ProbeResult } from '../probe/probe.js';
import { ConnectivityChecker, meets } from './connectivity.js';

const r = (x: Partial<ProbeResult>): ProbeResult => ({ from: 'a', to: 'b', proto: 'tcp', replyReceived: false, ...x });

describe('ConnectivityChecker', () => {
  it('meets: SNAT needs a reply and only the expected source; none needs nothing seen', () => {
    expect(meets(r({ replyReceived: true, observedSource: '1.1.1.1', evidence: 'reply' }), { snat: '1.1.1.1' })).toBe(true);
    expect(meets(r({ replyReceived: true, observedSource: '1.1.1.1', observedSources: ['1.1.1.1', '2.2.2.2'] }), { snat: '1.1.1.1' })).toBe(false);
    expect(meets(r({ replyReceived: false, observedSource: '1.1.1.1' }), { snat: '1.1.1.1' })).toBe(false);
    expect(meets(r({ replyReceived: true }), { snat: '1.1.1.1' })).toBe(false);
    expect(meets(r({ replyReceived: true }), 'some')).toBe(true);
    expect(meets(r({}), 'none')).toBe(true);
    expect(meets(r({ observedSource: '10.0.0.1' }), 'none')).toBe(false);
  });

  it('sends every probe and reports the whole matrix when a pair differs', async () => {
    const sent: string[] = [];
    const cc = new ConnectivityChecker({
      probe: async (from, to) => {
        sent.push(`${from}>${to}`);
        if (to === '8.8.8.8') return r({ from, to, replyReceived: true, observedSource: from === 'p1' ? '192.168.1.100' : '10.10.10.2', evidence: 'reply' });
        return r({ from, to });
      },
    });
    cc.expectSNAT('p1', '8.8.8.8', '192.168.1.100').expectSNAT('p2', '8.8.8.8', '192.168.1.100', { proto: 'udp' }).expectNone('p1', '192.168.1.99');
    const error = await cc.checkConnectivity('egress').then(
      () => undefined,
      (e: Error) => e,
    );
    expect(sent).toEqual(['p1>8.8.8.8', 'p2>8.8.8.8', 'p1>192.168.1.99']);
    expect(error?.message).toBe(
      'egress: 1 of 3 pairs differ\n' +
        '  ok   tcp p1 -> 8.8.8.8: expected answered, seen from 192.168.1.100 only; answered, seen from 192.168.1.100 (reply)\n' +
        '  FAIL udp p2 -> 8.8.8.8: expected answered, seen from 192.168.1.100 only; answered, seen from 10.10.10.2 (reply)\n' +
        '  ok   tcp p1 -> 192.168.1.99: expected nothing; nothing',
    );
    const ok = new ConnectivityChecker({ probe: async (from, to) => r({ from, to, replyReceived: true }) }).expectSome('p1', '8.8.8.8');
    expect((await ok.checkConnectivity()).map((p) => p.ok)).toEqual([true]);
  });
});
