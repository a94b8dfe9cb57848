/**
 * A continuous probe records, per packet, the source the far end observed and whether the reply
 * came back: the timeline failover scenarios assert on. Here a partition of node-1 makes an outage
 * of known shape, with no packet ever seen under another source.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordTimeline } from '../../harness/testing/artifacts.js';
import { pollUntil } from '../../harness/util/poll.js';
import { outages, leaks, sourceCounts, deliveryRatio } from '../../harness/probe/timeline.js';
import type { Proto } from '../../harness/inlab/protocol.js';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('foundation', 'tl');
});
afterAll(async () => {
  await lab?.down();
});

describe('continuous probe timeline through a partition of node-1', () => {
  for (const proto of ['udp', 'tcp', 'icmp'] as Proto[]) {
    it(`${proto}: one outage while partitioned, every packet observed as 10.10.10.1`, async () => {
      const p = await lab.continuousProbe('alice/frontend-1', '172.16.100.10', { proto, intervalMs: 20, timeoutMs: 300 });
      const answered = async (n: number) => (await p.records()).filter((r) => r.replied).length >= n;
      await pollUntil(() => answered(10), { what: '10 answered packets before the partition', timeoutMs: 15_000, intervalMs: 50 });
      await lab.faults.partition('node-1');
      const cutAt = (await p.records()).length;
      await pollUntil(async () => (await p.records()).filter((r) => !r.replied).length >= 5, {
        what: '5 lost packets during the partition',
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      await lab.faults.heal('node-1');
      const healedAt = (await p.records()).length;
      await pollUntil(async () => (await p.records()).slice(healedAt).filter((r) => r.replied).length >= 10, {
        what: '10 answered packets after healing',
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      // recorded: the run report (artifacts/report.html) shows it
      const t = recordTimeline(`${proto} alice/frontend-1 -> 172.16.100.10 through the partition of node-1`, await p.stop(), ['10.10.10.1']);

      expect(t.packets.length).toBeGreaterThanOrEqual(cutAt + 15);
      const o = outages(t);
      expect(o).toHaveLength(1);
      expect(o[0]!.lost).toBeGreaterThanOrEqual(5);
      expect(o[0]!.durationMs).toBeGreaterThanOrEqual(o[0]!.lost * 20 * 0.5);
      // Sequence numbers are contiguous and answered packets carry the pod's source.
      expect(t.packets.map((x) => x.seq)).toEqual(t.packets.map((_, i) => i + 1));
      expect(Object.keys(sourceCounts(t))).toEqual(['10.10.10.1']);
      const l = leaks(t, ['10.10.10.1']);
      expect(l.packets).toEqual([]);
      expect(l.unattributed).toEqual([]);
      expect(deliveryRatio(t)).toBeGreaterThan(0.3);
    });
  }
});
