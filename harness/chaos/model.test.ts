import { describe, expect, it } from 'vitest';
import { topologyFromArg } from '../topology/load.js';
import { loadManifests } from '../cluster/apply.js';
import { universeOf, type Schedule, type Step } from './schedule.js';
import {
  allowedWindows,
  BASE_MANIFESTS,
  CHAOS_LABEL,
  chaosFlows,
  chaosPolicyIP,
  chaosTopology,
  conntrackRules,
  doChurn,
  expectedSource,
  initialState,
  podConnectionEnds,
  replyExcuses,
  transitionEnd,
  undoChurn,
  type ActiveSpan,
} from './model.js';
import { executionPlan, pendingUndos } from './plan.js';

const t = chaosTopology(topologyFromArg('default'));
const u = universeOf(t);
const s0 = initialState(
  t,
  loadManifests(BASE_MANIFESTS).map((m) => m.object),
);
const step = (x: Partial<Step> & Pick<Step, 'kind'>): Step => ({ at: 0, durationMs: 1000, ...x }) as Step;
const src = (state: typeof s0, pod: string, dst: string) => expectedSource(t, state, pod, dst);

describe('the chaos lab', () => {
  it('has a pod on every node: cp-1 gets a free pod CIDR and default/client-cp-1; a topology that has them is kept', () => {
    const cp = t.nodes.find((n) => n.name === 'cp-1')!;
    expect(cp.podCIDR).toBe('10.10.0.0/24');
    expect(t.pods.find((p) => p.name === 'client-cp-1')).toMatchObject({ namespace: 'default', node: 'cp-1', ip: expect.stringMatching(/^10\.10\.0\./) });
    expect(new Set(t.pods.filter((p) => !p.hostNetwork).map((p) => p.node))).toEqual(new Set(t.nodes.map((n) => n.name)));
    expect(chaosTopology(t)).toBe(t);
    expect(u.pods).toContain('default/client-cp-1');
  });

  it('probes UDP from every pod to the internet, and from one pod per node UDP to the VPC, TCP and a long-lived stream', () => {
    const f = chaosFlows(t);
    expect(f.filter((x) => x.proto === 'udp' && x.to === '8.8.8.8').map((x) => x.pod)).toEqual([
      'alice/frontend-1',
      'default/client-1',
      'paul/frontend-2',
      'default/client-3',
      'default/client-cp-1',
    ]);
    for (const n of t.nodes.map((x) => x.name)) {
      expect(f.filter((x) => x.node === n && x.to === '172.16.100.10')).toHaveLength(1);
      expect(f.filter((x) => x.node === n && x.proto === 'tcp' && !x.stream)).toHaveLength(1);
      expect(f.filter((x) => x.node === n && x.stream)).toHaveLength(1);
    }
    expect(new Set(f.map((x) => x.name)).size).toBe(f.length);
    expect(f.find((x) => x.stream)!.name).toBe('stream alice/frontend-1 -> 8.8.8.8');
  });
});

describe('expected sources (SPEC 1 and 2)', () => {
  it('the seed: matched pods leave with 192.168.1.100, others masqueraded to their node IP, the VPC sees pod IPs', () => {
    expect(s0.floatingIPs).toEqual(['192.168.1.100', '192.168.1.101', '192.168.1.102']);
    expect(s0.gateway).toEqual({ namespace: 'cluster-cluster1', name: 'default' });
    expect(src(s0, 'alice/frontend-1', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.100'], answered: true });
    expect(src(s0, 'paul/frontend-2', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.100'], answered: true });
    expect(src(s0, 'default/client-1', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.1'], answered: true, why: 'masquerade: node IP' });
    expect(src(s0, 'default/client-3', '172.16.100.10')).toMatchObject({ sources: ['10.10.12.1'], answered: true });
    // the seed's policy is for 8.8.8.0/24 only
    expect(src(s0, 'alice/frontend-1', '172.16.100.10')).toMatchObject({ sources: ['10.10.10.1'] });
  });

  it('ConfigMap churn: 8.8.8.0/24 non-masquerade sends the pod IP to the internet (never answered), the VPC gets the node IP; undo restores no ConfigMap', () => {
    const { next, saved } = doChurn(s0, step({ kind: 'configmap', nonMasqueradeCIDRs: ['8.8.8.0/24'] }), u);
    expect(src(next, 'default/client-1', '8.8.8.8')).toMatchObject({ sources: ['10.10.10.2'], answered: false });
    expect(src(next, 'default/client-1', '172.16.100.10')).toMatchObject({ sources: ['192.168.1.1'], answered: true });
    expect(undoChurn(next, step({ kind: 'configmap', nonMasqueradeCIDRs: ['8.8.8.0/24'] }), saved)).toEqual(s0);
  });

  it('floating-IP churn: removing the seed IP leaves its pods fail-closed (same source, no answer); undo puts it back', () => {
    const rm = step({ kind: 'floating-ip', action: 'remove', ip: '192.168.1.100' });
    const { next, saved } = doChurn(s0, rm, u);
    expect(src(next, 'alice/frontend-1', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.100'], answered: false });
    expect(undoChurn(next, rm, saved).floatingIPs.sort()).toEqual([...s0.floatingIPs].sort());
    // adding an IP that is already there is undone as nothing
    const add = step({ kind: 'floating-ip', action: 'add', ip: '192.168.1.101' });
    const a = doChurn(s0, add, u);
    expect(undoChurn(a.next, add, a.saved)).toEqual(s0);
  });

  it("policy churn: create selects the pod by the chaos label with the policy's own IP; first policy by name wins; delete and undo", () => {
    expect(chaosPolicyIP(u, 'chaos-1')).toBe('192.168.1.101');
    expect(chaosPolicyIP(u, 'chaos-3')).toBe('192.168.1.103');
    const create = step({ kind: 'policy', action: 'create', policy: 'chaos-3', pod: 'alice/frontend-1', destinations: ['0.0.0.0/0'] });
    const c = doChurn(s0, create, u);
    expect(c.next.podLabels['alice/frontend-1']).toEqual({ role: 'frontend', [CHAOS_LABEL]: 'chaos-3' });
    // chaos-3 sorts before "egress": it wins, and 192.168.1.103 is no floating IP: fail-closed
    expect(src(c.next, 'alice/frontend-1', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.103'], answered: false });
    expect(src(c.next, 'alice/frontend-1', '172.16.100.10')).toMatchObject({ sources: ['192.168.1.103'] });
    expect(undoChurn(c.next, create, c.saved)).toEqual(s0);
    const del = step({ kind: 'policy', action: 'delete', policy: 'egress', pod: 'alice/frontend-1', destinations: ['8.8.8.0/24'] });
    const d = doChurn(s0, del, u);
    expect(src(d.next, 'alice/frontend-1', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.1'] });
    expect(undoChurn(d.next, del, d.saved)).toEqual(s0);
    // change-destinations / delete of a policy that does not exist change nothing
    expect(
      doChurn(s0, step({ kind: 'policy', action: 'change-destinations', policy: 'chaos-1', pod: 'default/client-1', destinations: ['8.8.8.0/24'] }), u).next,
    ).toEqual(s0);
  });

  it('relabel-pod toggles role=frontend (the pod leaves or enters the seed policy) and sets the chaos label; undo restores both', () => {
    const r = step({ kind: 'policy', action: 'relabel-pod', policy: 'chaos-2', pod: 'paul/frontend-2', destinations: ['8.8.8.0/24'] });
    const { next, saved } = doChurn(s0, r, u);
    expect(next.podLabels['paul/frontend-2']).toEqual({ [CHAOS_LABEL]: 'chaos-2' });
    expect(src(next, 'paul/frontend-2', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.2'] });
    expect(undoChurn(next, r, saved)).toEqual(s0);
    // overlapping steps on one pod: each undo puts back only its own keys
    const create = step({ kind: 'policy', action: 'create', policy: 'chaos-1', pod: 'paul/frontend-2', destinations: ['8.8.8.0/24'] });
    const a = doChurn(next, create, u);
    expect(src(a.next, 'paul/frontend-2', '8.8.8.8')).toMatchObject({ sources: ['192.168.1.101'], answered: true });
    const b = undoChurn(a.next, r, saved); // relabel undone first: role back, chaos label back to none
    expect(b.podLabels['paul/frontend-2']).toEqual({ role: 'frontend' });
    expect(undoChurn(b, create, a.saved).policies).toEqual(s0.policies);
  });
});

describe('allowed windows and excuses', () => {
  const spans: ActiveSpan[] = [{ step: 0, kind: 'node-kill', node: 'node-3', from: 10_000, to: 14_000 }];

  it('a transition lasts transitionMs, or until a fault it overlaps is over + transitionMs', () => {
    expect(transitionEnd(1000, spans, 3000)).toBe(4000);
    expect(transitionEnd(8000, spans, 3000)).toBe(17_000);
    expect(transitionEnd(20_000, spans, 3000)).toBe(23_000);
    expect(transitionEnd(8000, [{ step: 0, kind: 'partition', node: 'node-1', from: 9000 }], 3000)).toBe(Infinity);
  });

  it("each state allows its sources from its write until the next state's transition ended; old and new overlap", () => {
    const delEgress = doChurn(s0, step({ kind: 'policy', action: 'delete', policy: 'egress', pod: 'alice/frontend-1', destinations: ['8.8.8.0/24'] }), u).next;
    const flows = [{ name: 'udp a', pod: 'alice/frontend-1', to: '8.8.8.8' }];
    expect(
      allowedWindows(
        t,
        flows,
        [
          { t: 500, state: s0 },
          { t: 2000, state: delEgress },
        ],
        [],
        3000,
      ),
    ).toEqual([
      { flow: 'udp a', from: 0, to: 5000, sources: ['192.168.1.100'] },
      { flow: 'udp a', from: 2000, sources: ['192.168.1.1'] },
    ]);
  });

  it('a node may combine kinds it watches separately from different moments while their transitions overlap (chaos seed 848037986)', () => {
    // the ConfigMap makes 8.8.8.0/24 non-masquerade and is put back; then alice/frontend-1 is
    // relabelled out of the seed policy (into chaos-3, whose destinations do not hold 8.8.8.8)
    const cmStep = step({ kind: 'configmap', nonMasqueradeCIDRs: ['8.8.8.0/24'] });
    const relabel = step({
      kind: 'policy',
      action: 'relabel-pod',
      policy: 'chaos-3',
      pod: 'alice/frontend-1',
      destinations: ['172.16.100.0/24', '10.0.0.0/8'],
    });
    const cm = doChurn(s0, cmStep, u);
    const re = doChurn(s0, relabel, u);
    const changes = [
      { t: 0, state: s0 },
      { t: 12_386, state: cm.next },
      { t: 13_246, state: s0 },
      { t: 14_199, state: re.next },
      { t: 14_862, state: s0 },
    ];
    const flows = [{ name: 'udp a', pod: 'alice/frontend-1', to: '8.8.8.8' }];
    const podIP = t.pods.find((p) => p.name === 'frontend-1')!.ip!;
    // no state written to the API sends the flow with its pod IP: the policy selects it while the
    // ConfigMap lists 8.8.8.0/24, and the ConfigMap is back when the relabel takes it out
    for (const c of changes) expect(src(c.state, 'alice/frontend-1', '8.8.8.8').sources).not.toContain(podIP);
    const at = (windows: ReturnType<typeof allowedWindows>, ms: number) =>
      [...new Set(windows.filter((w) => w.from <= ms && (w.to === undefined || ms < w.to)).flatMap((w) => w.sources))].sort();
    // without a fault: the relabel comes while the ConfigMap's undo is in transition (a node may
    // apply the one before the other) until 16.246 s; from then on never the pod IP
    const quiet = allowedWindows(t, flows, changes, [], 3000);
    expect(quiet.filter((w) => w.mixed).map((x) => ({ from: x.from, to: x.to, sources: x.sources, mixed: x.mixed }))).toEqual([
      { from: 14_199, to: 16_246, sources: [podIP], mixed: { podLabels: 3, nonMasqueradeCIDRs: 1 } },
    ]);
    expect(at(quiet, 16_790)).toEqual(['192.168.1.1', '192.168.1.100']);
    // node-1 cut off outbound from 8.935 s to 16.673 s: the ConfigMap change and the relabel are both
    // in transition until 19.673 s, and their combination (8.8.8.0/24 listed, the pod relabelled)
    // sends the flow with its pod IP; nothing else is added, and nothing after the transitions
    const cut: ActiveSpan[] = [{ step: 2, kind: 'partition', node: 'node-1', from: 8935, to: 16_673 }];
    const w = allowedWindows(t, flows, changes, cut, 3000);
    expect(at(w, 16_790)).toEqual([podIP, '192.168.1.1', '192.168.1.100'].sort());
    expect(w.filter((x) => x.mixed).map((x) => ({ from: x.from, to: x.to, sources: x.sources, mixed: x.mixed }))).toEqual([
      { from: 14_199, to: 19_673, sources: [podIP], mixed: { podLabels: 3, nonMasqueradeCIDRs: 1 } },
    ]);
    expect(at(w, 19_673)).toEqual(['192.168.1.100']);
    // only faults that can hold back the pod's node's watches stretch a mixed view: the same cut on
    // node-3 leaves the quiet window; on cp-1 (the API server's node) it stretches it as on node-1
    const mixedOf = (spans: ActiveSpan[]) =>
      allowedWindows(t, flows, changes, spans, 3000)
        .filter((x) => x.mixed)
        .map((x) => [x.from, x.to]);
    expect(t.pods.find((p) => p.name === 'frontend-1')!.node).toBe('node-1');
    expect(mixedOf([{ ...cut[0]!, node: 'node-3' }])).toEqual([[14_199, 16_246]]);
    expect(mixedOf([{ ...cut[0]!, node: 'cp-1' }])).toEqual([[14_199, 19_673]]);
    expect(mixedOf([{ step: 2, kind: 'controller-restart', from: 12_000, to: 16_000 }])).toEqual([[14_199, 19_000]]);
  });

  it("conntrack keeps established bindings across a ConfigMap change (node IP <-> pod IP), not across a policy change (the gateway flushes the pair) or a kill of the flow's node", () => {
    const cm = doChurn(s0, step({ kind: 'configmap', nonMasqueradeCIDRs: ['0.0.0.0/0'] }), u).next;
    const del = doChurn(s0, step({ kind: 'policy', action: 'delete', policy: 'egress', pod: 'alice/frontend-1', destinations: ['8.8.8.0/24'] }), u).next;
    const flows = [
      { name: 'udp c1', pod: 'default/client-1', to: '8.8.8.8', node: 'node-1' },
      { name: 'udp a', pod: 'alice/frontend-1', to: '8.8.8.8', node: 'node-1' },
      { name: 'udp c3', pod: 'default/client-3', to: '8.8.8.8', node: 'node-3' },
    ];
    const changes = [
      { t: 0, state: s0 },
      { t: 1000, state: cm },
      { t: 2000, state: s0 },
      { t: 3000, state: del },
    ];
    const kill: ActiveSpan = { step: 4, kind: 'node-kill', node: 'node-3', from: 4000, to: 6000 };
    expect(conntrackRules(t, flows, changes, [kill, { step: 5, kind: 'partition', node: 'node-1', from: 4500, to: 5000 }])).toEqual([
      // masqueraded: node IP -> pod IP -> node IP, both kept; the seed policy's deletion changes nothing for it
      // (the partition of node-1 may lose what node-1 sends after its conntrack: lossy; the kill is not)
      { flow: 'udp c1', keeps: [1000, 2000], ends: [], lossy: [{ from: 4500, to: 5000 }] },
      // in the seed policy: the ConfigMap changes nothing for it; leaving the policy flushes its pair
      { flow: 'udp a', keeps: [], ends: [3000], lossy: [{ from: 4500, to: 5000 }] },
      { flow: 'udp c3', keeps: [1000, 2000], ends: [4000], lossy: [] },
    ]);
    // loss, rate limits and black holes at the switch on the flow's node are lossy too; one never undone lasts to the end
    const faults: ActiveSpan[] = [
      { step: 6, kind: 'link-loss', node: 'node-3', from: 100, to: 200 },
      { step: 7, kind: 'rate-limit', node: 'node-3', from: 300, to: 400 },
      { step: 8, kind: 'blackhole-gateway', node: 'node-3', from: 500 },
      { step: 9, kind: 'node-pause', node: 'node-3', from: 600, to: 700 },
      { step: 10, kind: 'agent-restart', node: 'node-3', from: 800, to: 900 },
    ];
    expect(conntrackRules(t, flows, changes, faults).find((r) => r.flow === 'udp c3')!.lossy).toEqual([
      { from: 100, to: 200 },
      { from: 300, to: 400 },
      { from: 500, to: Infinity },
    ]);
    // the kill ends the node's bindings when it finished (its packets may leave until then), when that is known
    expect(conntrackRules(t, flows, changes, [{ ...kill, doneAt: 4200 }]).find((r) => r.flow === 'udp c3')!.ends).toEqual([4200]);
  });

  it("replies may be lost during a fault on the flow's node, any fault or agent restart while it goes through the gateway, and churn transitions", () => {
    const flows = [
      { name: 'masq node-3', pod: 'default/client-3', node: 'node-3', to: '8.8.8.8' },
      { name: 'masq node-1', pod: 'default/client-1', node: 'node-1', to: '8.8.8.8' },
      { name: 'gw', pod: 'alice/frontend-1', node: 'node-1', to: '8.8.8.8' },
    ];
    const ex = replyExcuses(
      t,
      flows,
      [
        { t: 0, state: s0 },
        { t: 20_000, state: s0 },
      ],
      [...spans, { step: 1, kind: 'agent-restart', node: 'node-1', from: 15_000, to: 16_000 }],
      { transitionMs: 3000, graceMs: 5000 },
    );
    expect(ex.filter((e) => e.flow === 'masq node-3')).toEqual([
      { flow: 'masq node-3', from: 10_000, to: 19_000 },
      { flow: 'masq node-3', from: 20_000, to: 23_000 },
    ]);
    expect(ex.filter((e) => e.flow === 'masq node-1')).toEqual([{ flow: 'masq node-1', from: 20_000, to: 23_000 }]);
    // node-1's agent restart: a failover when node-1 holds a floating IP, so the gateway flow's replies are excused until graceMs after it; the masquerade flows' are not
    expect(ex.filter((e) => e.flow === 'gw')).toEqual([
      { flow: 'gw', from: 10_000, to: 19_000 },
      { flow: 'gw', from: 15_000, to: 21_000 },
      { flow: 'gw', from: 20_000, to: 23_000 },
    ]);
  });
});

describe("when a flow's pod loses its connections", () => {
  it('at each stop or kill of its node (from when it was issued); a pause, a partition or a restart of the agent ends none', () => {
    const flows = [
      { name: 'stream a', node: 'node-1' },
      { name: 'tcp b', node: 'node-2' },
    ];
    const spans: ActiveSpan[] = [
      { step: 0, kind: 'node-stop', node: 'node-1', from: 1000, doneAt: 1300, to: 4000 },
      { step: 1, kind: 'node-kill', node: 'node-1', from: 6000, doneAt: 6050, to: 8000 },
      { step: 2, kind: 'node-pause', node: 'node-2', from: 1000, to: 3000 },
      { step: 3, kind: 'partition', node: 'node-2', from: 4000, to: 5000 },
      { step: 4, kind: 'agent-restart', node: 'node-2', from: 5500, to: 5600 },
      { step: 5, kind: 'node-kill', node: 'node-3', from: 7000, to: 9000 },
    ];
    expect(podConnectionEnds(flows, spans)).toEqual([
      { flow: 'stream a', at: 1000 },
      { flow: 'stream a', at: 6000 },
    ]);
  });
});

describe('the execution plan', () => {
  const schedule: Schedule = {
    version: 1,
    topology: 'default',
    steps: [
      step({ kind: 'node-kill', node: 'node-1', at: 0, durationMs: 2000 }),
      step({ kind: 'controller-restart', at: 500, durationMs: 0 }),
      step({ kind: 'node-pause', node: 'node-1', at: 2000, durationMs: 1000 }),
      step({ kind: 'configmap', nonMasqueradeCIDRs: ['8.8.8.0/24'], at: 2500, durationMs: 1000, keep: true }),
    ],
  };

  it('every step done at its time and undone after its duration (not kept, not instant), undos first at one time, each on its lane', () => {
    expect(executionPlan(schedule)).toEqual([
      { at: 0, step: 0, phase: 'do', lane: 'node-1' },
      { at: 500, step: 1, phase: 'do', lane: 'api' },
      { at: 2000, step: 0, phase: 'undo', lane: 'node-1' },
      { at: 2000, step: 2, phase: 'do', lane: 'node-1' },
      { at: 2500, step: 3, phase: 'do', lane: 'api' },
      { at: 3000, step: 2, phase: 'undo', lane: 'node-1' },
    ]);
  });

  it('a run that stops early undoes what is still in force, latest first; instant and kept steps have nothing to undo', () => {
    expect(pendingUndos(schedule, new Set([0, 1, 2, 3]), new Set([0]))).toEqual([2]);
    expect(pendingUndos(schedule, new Set([0, 1]), new Set())).toEqual([0]);
  });
});
