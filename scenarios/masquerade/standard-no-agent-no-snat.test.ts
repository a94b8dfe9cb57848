/**
 * SPEC 1, Standard cluster without ip-masq-agent, `disableDefaultSnat: true` (topology `snat: none`
 * with the cluster running): no SNAT at all, so every destination observes the pod IP. Pod IPs are
 * not routable on the internet: a public endpoint's replies never reach the pod (not one packet of a
 * continuous probe), while the VPC endpoint, which routes back to pod CIDRs, answers every packet.
 * hostNetwork pods still leave with the node IP. TCP, UDP and ICMP for every flow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lab } from '../../harness/lab/lab.js';
import type { Proto } from '../../harness/inlab/protocol.js';
import { startTestLab } from '../../harness/testing/lab.js';
import { recordArtifactsOnFailure, recordTimeline } from '../../harness/testing/artifacts.js';
import { deliveryRatio } from '../../harness/probe/timeline.js';
import { pollUntil } from '../../harness/util/poll.js';
import { MASQ_TABLE } from '../../agent/masq/constants.js';
import { DEFAULT_RANGE_ADDRESSES, METADATA, VPC, agentStatus, expectFlows, keep, nodeIP, podIP, podNodes } from './masq-kit.js';

const POD = 'alice/frontend-1';

let lab: Lab;
beforeAll(async () => {
  lab = await startTestLab('standard-no-snat', 'mns');
});
afterAll(async () => {
  await lab?.down();
});
recordArtifactsOnFailure(() => lab);

describe('Standard, no ip-masq-agent, disableDefaultSnat: true', () => {
  it('no node carries a masquerade table', async () => {
    for (const node of podNodes(lab)) {
      const s = await agentStatus(lab, node);
      expect(s.masq, node).toMatchObject({ mode: 'none', status: 'running', setElements: 0, lastError: null });
      const r = await lab.exec(node, ['nft', 'list', 'table', 'ip', MASQ_TABLE], { check: false });
      expect(r.exitCode, `${node}: nft list table ip ${MASQ_TABLE}: ${r.stdout}`).not.toBe(0);
    }
  });

  it('keeps the pod IP for every destination: the VPC (and its ranges) answers, the internet does not', async () => {
    const some = DEFAULT_RANGE_ADDRESSES.filter((_, i) => i % 4 === 1).map(([, ip]) => ip); // 172.20.0.1, 192.0.2.50, 198.51.100.50
    await expectFlows(lab, [
      ...keep(lab, POD, [VPC, ...some, METADATA, podIP(lab, 'paul/frontend-2')], true),
      ...keep(lab, POD, ['8.8.8.8', '1.1.1.1'], false),
      ...keep(lab, 'paul/frontend-2', ['8.8.8.8'], false),
      ...keep(lab, 'paul/frontend-2', [VPC], true),
    ]);
  });

  it("a public endpoint's reply never reaches the pod, while the VPC's always does (continuous probes)", async () => {
    const ip = podIP(lab, POD);
    for (const proto of ['udp', 'tcp', 'icmp'] as Proto[]) {
      const [pub, vpc] = await Promise.all([
        lab.continuousProbe(POD, '8.8.8.8', { proto, intervalMs: 50, timeoutMs: 500 }),
        lab.continuousProbe(POD, VPC, { proto, intervalMs: 50, timeoutMs: 2000 }),
      ]);
      // 20 packets of each settled (the internet's are settled by their timeout)
      await pollUntil(async () => (await pub.records()).length >= 20 && (await vpc.records()).length >= 20, {
        what: `20 settled ${proto} packets per probe`,
        timeoutMs: 20_000,
        intervalMs: 100,
      });
      const [tp, tv] = await Promise.all([pub.stop(), vpc.stop()]);
      recordTimeline(`${proto} to the internet`, tp, [ip]);
      recordTimeline(`${proto} to the VPC`, tv, [ip]);
      expect(tp).toBeObservedOnlyFrom([ip]);
      expect(tp).toHaveNoLeaks([ip]);
      expect(
        tp.packets.filter((p) => p.replied),
        `${proto}: replies from the internet`,
      ).toEqual([]);
      expect(tv).toBeObservedOnlyFrom([ip]);
      expect(tv).toHaveNoLeaks([ip]);
      expect(deliveryRatio(tv), `${proto}: share of VPC packets answered`).toBeGreaterThanOrEqual(0.95);
    }
  });

  it('hostNetwork pods appear as the node IP, and get their replies', async () => {
    const host = 'default/host-1';
    await expectFlows(
      lab,
      [VPC, '8.8.8.8'].map((to) => ({ from: host, to, source: nodeIP(lab, host), reply: true })),
    );
  });
});
