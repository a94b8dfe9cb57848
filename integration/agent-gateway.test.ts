// The gateway module against the real API server in-process (controller/testing.ts) with a
// recording fake of the kernel (FakeHost): watches -> plan -> one nft transaction, floating
// IP + gratuitous ARP, failover when the holder's lease stops, fail-closed, clean stop.
import { conntrackdPaths, parseFloatingHistory } from '../agent/gateway/conntrack-sync.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { R } from '../lib/kube/client.js';
import { startLeaseRenewer, type LeaseRenewer } from '../lib/kube/lease.js';
import { startTestController, waitFor, type TestController } from '../controller/testing.js';
import { DEFAULT_BOOT_HOOK_DIR, parseAgentConfig } from '../agent/config.js';
import { FakeHost } from '../agent/host/fake-host.js';
import { Licence, Signal } from '../agent/node/module.js';
import { NodeEventRecorder } from '../agent/node/node-events.js';
import { BOOT_FENCE_HOOK, GatewayModule } from '../agent/node/gateway-module.js';
import { renderBootFence } from '../agent/gateway/render.js';
import { ARP_FENCE_MARGIN_MS } from '../agent/gateway/constants.js';

const LEASE = { renewIntervalMs: 50, expiryMs: 300, startupGraceMs: 300 };
let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const lastNft = (s: FakeHost): string => s.calls.filter((c) => c.op === 'nft' && c.arg.includes('delete table ip')).at(-1)?.arg ?? '';

/** worker1's agent config, API client, Event recorder and a recording fake of its kernel. */
function worker1(t: TestController, dir: string, over: Record<string, unknown> = {}) {
  const config = parseAgentConfig({
    nodeName: 'worker1',
    nodeIP: '192.168.1.1',
    podCIDRs: ['10.10.10.0/24'],
    apiServer: t.running.url,
    caFile: '/nonexistent/ca.crt',
    tokenFile: '/nonexistent/token',
    flavour: 'ip-masq-agent',
    statusPath: join(dir, 'status.json'),
    masqStatePath: join(dir, 'masq.json'),
    ipMasqAgentConfigPath: join(dir, 'cfg', 'config'),
    ...over,
  });
  const client = t.node('worker1');
  const logs: string[] = [];
  const events = new NodeEventRecorder({ client, node: 'worker1', log: (m) => logs.push(m) });
  cleanup.push(() => events.stop(200));
  const sys = new FakeHost({
    ipJson: { '-4 addr show': JSON.stringify([{ ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.168.1.1', prefixlen: 24 }] }]) },
    sysctls: { 'net/netfilter/nf_conntrack_events': '2' },
  });
  return { config, client, logs, events, sys };
}

const POLICY = {
  apiVersion: 'networking.gke.io/v1alpha1',
  kind: 'EgressNATPolicy',
  metadata: { name: 'egress' },
  spec: {
    egress: [{ namespaceSelector: { matchLabels: { user: 'alice' } }, podSelector: { matchLabels: { role: 'frontend' } } }],
    destinationCIDRs: ['8.8.8.0/24'],
    egressSourceIP: '192.168.1.100',
  },
};

/** A running pod in namespace alice: created on `node`, then its status patched with `ip`. */
async function runningPod(t: TestController, name: string, labels: Record<string, string>, node: string, ip: string): Promise<void> {
  await t.admin.create(R.pods, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'alice', labels },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] },
  });
  await t.admin.patch(R.pods, name, { status: { podIP: ip, podIPs: [{ ip }], phase: 'Running' } }, { namespace: 'alice', subresource: 'status' });
}

/** Namespace alice, its running frontend pods ([name, node, ip]) and the seed policy. */
async function seedAlice(t: TestController, pods: readonly (readonly [string, string, string])[]): Promise<void> {
  await t.admin.create(R.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'alice', labels: { user: 'alice' } } });
  for (const [name, node, ip] of pods) await runningPod(t, name, { role: 'frontend' }, node, ip);
  await t.admin.create(R.egressNATPolicies, POLICY);
}

/** An in-process controller with the test lease timings and a temporary directory, both removed at cleanup. */
async function controllerAndDir(): Promise<{ t: TestController; dir: string }> {
  const t = await startTestController({ lease: LEASE });
  cleanup.push(() => t.close());
  const dir = mkdtempSync(join(tmpdir(), 'egresslab-gw-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return { t, dir };
}

/** The gateway of the tests (kube-system/default): by default one floating IP, 192.168.1.100. */
async function createGateway(t: TestController, floatingIPs: string[] = ['192.168.1.100']): Promise<void> {
  await t.admin.create(R.anthosNetworkGateways, {
    apiVersion: 'networking.gke.io/v1alpha1',
    kind: 'AnthosNetworkGateway',
    metadata: { name: 'default', namespace: 'kube-system' },
    spec: { floatingIPs },
  });
}

/** Renews `node`'s Lease like its agent would, until stopped or cleanup. */
function renew(t: TestController, node: string): LeaseRenewer {
  const r = startLeaseRenewer(t.node(node), node, LEASE.renewIntervalMs);
  cleanup.push(() => r.stop());
  return r;
}

/** Waits until the controller has `node` Up. */
async function nodeUp(t: TestController, node: string): Promise<void> {
  await waitFor(async () => {
    const gwn = await t.admin.tryGet(R.anthosNetworkGatewayNodes, node, 'kube-system');
    return (gwn?.status as { state?: string } | undefined)?.state === 'Up';
  }, `${node} Up`);
}

/** Starts worker1's gateway module on `w` (worker1()), stopped at cleanup. */
async function startModule(
  w: ReturnType<typeof worker1>,
  opts: ConstructorParameters<typeof GatewayModule>[1],
  licence = new Licence(),
): Promise<GatewayModule> {
  const mod = new GatewayModule(
    {
      config: w.config,
      client: w.client,
      events: w.events,
      log: (m, msg) => w.logs.push(`${m}: ${msg}`),
      statusChanged: () => undefined,
      holding: new Signal(false),
      licence,
      stopping: new AbortController().signal,
    },
    opts,
  );
  cleanup.push(() => mod.stop());
  await mod.start();
  return mod;
}

describe('GatewayModule', () => {
  it('programs the seed datapath, fails over when the holder goes Down, fails closed without holder, stops fail-closed (removeRulesOnStop)', async () => {
    const { t, dir } = await controllerAndDir();
    const renewers: Record<string, LeaseRenewer> = { worker1: renew(t, 'worker1'), worker2: renew(t, 'worker2') };
    await nodeUp(t, 'worker2');

    await t.admin.create(R.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'alice', labels: { user: 'alice' } } });
    for (const [name, node, ip, labels] of [
      ['frontend-1', 'worker1', '10.10.10.1', { role: 'frontend' }],
      ['frontend-2', 'worker2', '10.10.11.1', { role: 'frontend' }],
    ] as const)
      await runningPod(t, name, { ...labels }, node, ip);
    await createGateway(t);
    await t.admin.create(R.egressNATPolicies, {
      apiVersion: 'networking.gke.io/v1alpha1',
      kind: 'EgressNATPolicy',
      metadata: { name: 'egress' },
      spec: {
        egress: [{ namespaceSelector: { matchLabels: { user: 'alice' } }, podSelector: { matchLabels: { role: 'frontend' } } }],
        destinationCIDRs: ['8.8.8.0/24'],
        egressSourceIP: '192.168.1.100',
      },
    });

    const w = worker1(t, dir, { removeRulesOnStop: true });
    const { logs, sys } = w;
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0, 10] });

    // allocation: worker1 (a worker holding nothing, first by name) holds 192.168.1.100 -> SNAT here
    await waitFor(() => lastNft(sys).includes('snat to 192.168.1.100'), 'SNAT programmed on the holder');
    expect(lastNft(sys)).toContain('set p_egress_all { type ipv4_addr; elements = { 10.10.10.1, 10.10.11.1 } }');
    await waitFor(() => sys.calls.some((c) => c.op === 'arping' && c.arg === 'eth0 192.168.1.100'), 'gratuitous ARP');
    expect(sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0')).toBe(true);
    // no conntrack sync here: the take deletes what this node tracked towards the IP on its own, before the address goes on
    const iPurge = sys.calls.findIndex((c) => c.op === 'conntrack' && c.arg === '-D -d 192.168.1.100');
    expect({ purged: iPurge >= 0, beforeAdd: iPurge < sys.calls.findIndex((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0') }).toEqual(
      {
        purged: true,
        beforeAdd: true,
      },
    );
    expect(sys.calls.filter((c) => c.op === 'sysctl').map((c) => c.arg)).toContain('net/ipv4/conf/eth0/send_redirects=0');
    // liberal TCP window tracking: entries kept from an earlier tenure or loaded back stay usable
    expect(sys.calls.filter((c) => c.op === 'sysctl').map((c) => c.arg)).toContain('net/netfilter/nf_conntrack_tcp_be_liberal=1');
    expect(sys.calls.some((c) => c.op === 'ip' && c.arg === 'rule add pref 1000 fwmark 0x10000/0xff0000 table 7101')).toBe(true);
    expect(mod.status()).toMatchObject({
      uplink: 'eth0',
      ownedIPs: ['192.168.1.100'],
      policies: [{ name: 'egress', action: 'local', snatHere: true, holder: 'worker1' }],
    });
    // the forward fence it applied is also the node's boot hook (written once, not at every apply)
    const hookPath = join(DEFAULT_BOOT_HOOK_DIR, BOOT_FENCE_HOOK);
    // peers: every other node of the test controller with a pod CIDR (controller/testing.ts)
    expect(sys.files.get(hookPath)).toBe(renderBootFence(['10.10.10.0/24'], ['10.10.0.0/24', '10.10.11.0/24']));
    expect(logs.filter((l) => l.includes(`boot hook ${hookPath}`))).toHaveLength(1);

    // worker1's lease stops -> Down -> the IP moves to worker2 -> worker1 releases it and routes to worker2
    await renewers.worker1!.stop();
    await waitFor(() => /to gateway worker2 \(192\.168\.1\.2\)/.test(lastNft(sys)), 'routed to the new holder', 5000);
    expect(lastNft(sys)).not.toContain('snat to');
    expect(mod.status()).toMatchObject({ ownedIPs: [], policies: [{ action: 'route', holder: 'worker2' }] });
    expect((mod.status().lastTriggerToCommitMs as number) < 1000).toBe(true);

    // the policy is deleted: its pairs are held fail-closed while their conntrack entries go, and
    // only then is the final ruleset (no policy: masquerade decides again) committed
    const mark = sys.calls.length;
    const policy = await t.admin.get(R.egressNATPolicies, 'egress');
    await t.admin.delete(R.egressNATPolicies, 'egress');
    await waitFor(
      () => sys.calls.slice(mark).some((c) => c.op === 'nft' && c.arg.includes('delete table ip') && !c.arg.includes('policy egress')),
      'final ruleset without the policy',
      5000,
    );
    const after = sys.calls.slice(mark);
    const iTransit = after.findIndex((c) => c.op === 'nft' && /policy egress~leaving: fail-closed \(leaving the policy/.test(c.arg));
    const iFlush = after.findIndex((c) => c.op === 'conntrack' && c.arg.includes('-D -s 10.10.10.1 -d 8.8.8.0 --mask-dst 255.255.255.0'));
    const iFinal = after.findIndex((c) => c.op === 'nft' && c.arg.includes('delete table ip') && !c.arg.includes('policy egress'));
    expect(
      { iTransit: iTransit >= 0, flushAfterTransit: iFlush > iTransit, finalAfterFlush: iFinal > iFlush },
      JSON.stringify(after.map((c) => `${c.op} ${c.arg.slice(0, 60)}`)),
    ).toEqual({ iTransit: true, flushAfterTransit: true, finalAfterFlush: true });
    await t.admin.create(R.egressNATPolicies, { apiVersion: policy.apiVersion, kind: policy.kind, metadata: { name: 'egress' }, spec: policy.spec });
    await waitFor(() => /to gateway worker2 \(192\.168\.1\.2\)/.test(lastNft(sys)), 'routed again once the policy is back', 5000);

    // worker2 Down too -> unassigned -> fail-closed drop; the pod's conntrack entries stay (a drop
    // drops whatever they say; the routed treatment may come back: render.ts treatmentsAfter)
    const flushes = (from: number) => sys.calls.slice(from).filter((c) => c.op === 'conntrack' && c.arg.includes('-D -s 10.10.10.1 '));
    const beforeDrop = sys.calls.length;
    await renewers.worker2!.stop();
    await waitFor(() => /policy egress: fail-closed/.test(lastNft(sys)), 'fail-closed', 5000);
    expect(logs.join('\n')).toMatch(/policy egress: drop for 1 local pod/);
    expect(flushes(beforeDrop)).toEqual([]);

    // a decommissioning stop leaves a fail-closed table, never nothing, and no entry kept for a
    // next treatment (the next agent does not know what they were made under)
    const beforeStop = sys.calls.length;
    await mod.stop();
    expect(lastNft(sys)).toMatch(/counter drop comment "policy egress: fail-closed \(no AnthosNetworkGateway is served\)"/);
    expect(flushes(beforeStop).map((c) => c.arg)).toEqual(['-D -s 10.10.10.1 -d 8.8.8.0 --mask-dst 255.255.255.0']);
  }, 20_000);

  it("a holder removes a forwarded pod's bindings to the IP of a deleted policy it still holds, after the final ruleset (chaos seed 848037965)", async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1'); // the only node Up: it holds both IPs
    await nodeUp(t, 'worker1');
    await t.admin.create(R.namespaces, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'alice', labels: { user: 'alice' } } });
    await runningPod(t, 'frontend-2', { role: 'frontend' }, 'worker2', '10.10.11.1');
    await createGateway(t, ['192.168.1.100', '192.168.1.101']);
    await t.admin.create(R.egressNATPolicies, POLICY);
    await t.admin.create(R.egressNATPolicies, {
      ...POLICY,
      metadata: { name: 'wide' },
      spec: { egress: [{ namespaceSelector: { matchLabels: { user: 'alice' } } }], destinationCIDRs: ['0.0.0.0/0'], egressSourceIP: '192.168.1.101' },
    });
    const w = worker1(t, dir);
    const mod = await startModule(w, { host: w.sys, heartbeat: false, garpScheduleMs: [0] });
    await waitFor(() => lastNft(w.sys).includes('snat to 192.168.1.100') && lastNft(w.sys).includes('snat to 192.168.1.101'), 'both policies SNATed here');

    const mark = w.sys.calls.length;
    await t.admin.delete(R.egressNATPolicies, 'wide');
    const flush = '-D -s 10.10.11.1 -d 0.0.0.0 --mask-dst 0.0.0.0 --reply-dst 192.168.1.101';
    await waitFor(
      () => w.sys.calls.slice(mark).some((c) => c.op === 'conntrack' && c.arg === flush),
      "the forwarded pod's bindings to 192.168.1.101 removed",
      5000,
    );
    const after = w.sys.calls.slice(mark);
    const iFinal = after.findIndex((c) => c.op === 'nft' && c.arg.includes('delete table ip') && !c.arg.includes('snat to 192.168.1.101'));
    const iFlush = after.findIndex((c) => c.op === 'conntrack' && c.arg === flush);
    // after the ruleset without `wide`: the next packet makes its entry under egress (SNAT to .100)
    expect({ final: iFinal >= 0, flushAfterFinal: iFlush > iFinal }, JSON.stringify(after.map((c) => `${c.op} ${c.arg.slice(0, 60)}`))).toEqual({
      final: true,
      flushAfterFinal: true,
    });
    expect(lastNft(w.sys)).toContain('snat to 192.168.1.100');
    // its bindings to 192.168.1.100 (egress, still in force) are left
    expect(after.filter((c) => c.op === 'conntrack').map((c) => c.arg)).toEqual([flush]);
    expect(mod.status()).toMatchObject({ ownedIPs: ['192.168.1.100', '192.168.1.101'], forwardedFlushes: 1 });
    expect(w.logs.join('\n')).toMatch(
      /conntrack: removed the bindings of 1 forwarded pair\(s\) to an IP their policy no longer SNATs them to here \(10\.10\.11\.1 -> 0\.0\.0\.0 mask 0\.0\.0\.0, SNATed to 192\.168\.1\.101\)/,
    );
  }, 20_000);

  it('a clean stop (the default) leaves the datapath as programmed: the floating IP, SNAT and the ARP fence stay for the next agent', async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t);
    await seedAlice(t, [['frontend-1', 'worker1', '10.10.10.1']]);
    const w = worker1(t, dir);
    const { logs, sys } = w;
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'), 'worker1 takes 192.168.1.100', 5000);
    const programmed = sys.tables.get('egresslab_gw');
    expect(programmed).toContain('snat to 192.168.1.100');
    const mark = sys.calls.length;
    await mod.stop();
    // conntrackd stopped; nothing released, nothing re-programmed
    const after = sys.calls.slice(mark);
    expect(after.filter((c) => c.op === 'nft' || c.op === 'ip').map((c) => `${c.op} ${c.arg.slice(0, 60)}`)).toEqual([]);
    expect(sys.tables.get('egresslab_gw')).toBe(programmed);
    expect(logs.at(-1)).toMatch(/gateway: stopped: datapath left as it is/);
  }, 20_000);

  it("the ARP fence never outlives the controller's licence: bounded refreshes, a lapse without a Down (no re-read), a Down (re-read first)", async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t);
    const w = worker1(t, dir);
    const { logs, sys } = w;
    let until = Date.now() + 60_000;
    let downs = 0;
    const licence = new Licence();
    licence.setSource({ until: () => until, downs: () => downs });
    // where sys.calls stood when each log line was written
    const marks: { line: string; calls: number }[] = [];
    const push = logs.push.bind(logs);
    logs.push = (...lines: string[]) => {
      for (const line of lines) marks.push({ line, calls: sys.calls.length });
      return push(...lines);
    };
    const at = (text: string) => marks.find((m) => m.line.includes(text))?.calls;
    // no conflict probe: the takeover's own transaction carries the element
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], dadProbeMs: 0 }, licence);
    const refreshes = (from = 0) => sys.calls.slice(from).filter((c) => c.op === 'nftLine' && c.arg.includes(' alive { 192.168.1.100 timeout '));
    // the takeover's ruleset carries the element in the same transaction; the ruleset itself none
    await waitFor(
      () => sys.calls.some((c) => c.op === 'nft' && c.arg.includes('add element arp egresslab_gw alive { 192.168.1.100 timeout 1s')),
      'the takeover',
      5000,
    );
    expect(sys.tables.get('egresslab_gw')).toContain('set alive { type ipv4_addr; flags timeout; }');
    // a long licence: the fixed bound (1 s)
    await waitFor(() => refreshes().length > 0, 'an ARP fence refresh', 5000);
    expect(refreshes()[0]!.arg).toContain('192.168.1.100 timeout 1s expires 1s');
    // a short licence: each refresh ends its element ARP_FENCE_MARGIN_MS before the licence does
    const short = sys.calls.length;
    until = Date.now() + 500;
    await waitFor(() => refreshes(short).length > 0, 'a refresh within the short licence', 5000);
    const ms = Number(/timeout (\d+)ms/.exec(refreshes(short)[0]!.arg)?.[1]);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThanOrEqual(500 - ARP_FENCE_MARGIN_MS);
    // it runs out: no refresh; acknowledged again without a Down: refreshed again, no re-read
    await waitFor(() => at('ARP fence lapsed for 192.168.1.100') !== undefined, 'the lapse', 5000);
    until = Date.now() + 60_000;
    await waitFor(() => at('heartbeats acknowledged again (the controller did not have this node Down)') !== undefined, 'the refresh after the lapse', 5000);
    const lapsed = at('ARP fence lapsed for 192.168.1.100')!;
    const back = at('heartbeats acknowledged again')!;
    expect(refreshes(lapsed).length - refreshes(back).length, 'refreshes while the licence had run out').toBe(0);
    expect(at('ARP fence and announcements held until the gateway status is re-read'), 'a re-read without a Down').toBeUndefined();
    await waitFor(() => refreshes(back).length > 0, 'refreshes again', 5000);
    // the controller had the node Down meanwhile (its acknowledgements say so): a fresh read before any refresh
    downs = 1;
    await waitFor(() => at('after the stall: still the holder of 192.168.1.100') !== undefined, 'the confirming read', 5000);
    const asked = at('the controller had this node Down since its previous acknowledgement')!;
    const confirmed = at('after the stall: still the holder of 192.168.1.100')!;
    expect(asked).toBeDefined();
    expect(refreshes(asked).length - refreshes(confirmed).length, 'refreshes between the Down and the confirming read').toBe(0);
    await waitFor(() => refreshes(confirmed).length > 0, 'refreshes after the read', 5000);
    expect(refreshes(confirmed)[0]!.arg).toContain('timeout 1s');
  }, 20_000);

  it('address conflict detection: a floating IP another host answers for is added but neither answered for nor announced until that host goes quiet', async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    const w = worker1(t, dir);
    const { logs, sys } = w;
    const FOREIGN = '02:00:00:00:00:99';
    sys.probeAnswers.set('192.168.1.100', FOREIGN);
    await createGateway(t);
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0, 10], dadProbeMs: 20, dadRetryMs: 20, dadReportAfterMs: 300 });
    const answeredFor = (from = 0) =>
      sys.calls.slice(from).filter((c) => (c.op === 'nft' || c.op === 'nftLine') && c.arg.includes('add element arp egresslab_gw alive { 192.168.1.100'));
    const garps = (from = 0) => sys.calls.slice(from).filter((c) => c.op === 'arping' && c.arg === 'eth0 192.168.1.100');
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'), 'the address added', 5000);
    const conflictEvent = async () =>
      (await t.admin.list(R.events, { namespace: 'default' })).items.find((e) => (e as { reason?: string }).reason === 'EgressIPConflict');
    await waitFor(async () => !!(await conflictEvent()), 'the EgressIPConflict Event', 5000);
    expect(((await conflictEvent()) as { message?: string }).message).toContain(FOREIGN);
    const probes = sys.calls.filter((c) => c.op === 'arpProbe' && c.arg === 'eth0 192.168.1.100').length;
    expect(probes, 'probes while the foreign host answers').toBeGreaterThan(3);
    expect(
      answeredFor().map((c) => c.arg.slice(0, 80)),
      'ARP fence elements while another host answers',
    ).toEqual([]);
    expect(garps().length, 'gratuitous ARPs while another host answers').toBe(0);
    expect(mod.status()).toMatchObject({ ownedIPs: ['192.168.1.100'], probing: { '192.168.1.100': FOREIGN } });
    // the foreign host goes quiet: the next probe is clean, then the element and the announcement
    const quiet = sys.calls.length;
    sys.probeAnswers.delete('192.168.1.100');
    await waitFor(() => garps(quiet).length > 0 && answeredFor(quiet).length > 0, 'answered for and announced', 5000);
    const iProbe = sys.calls.findIndex((c, i) => i >= quiet && c.op === 'arpProbe');
    const iAlive = sys.calls.indexOf(answeredFor(quiet)[0]!);
    const iGarp = sys.calls.indexOf(garps(quiet)[0]!);
    expect({ aliveAfterProbe: iAlive > iProbe, garpAfterProbe: iGarp > iProbe }).toEqual({ aliveAfterProbe: true, garpAfterProbe: true });
    expect(mod.status()).toMatchObject({ probing: {} });
    expect(logs.join('\n')).toContain(`${FOREIGN} no longer answers for it`);
  }, 20_000);

  it('announcements keep to the licence too: a gratuitous ARP (a packet socket, past the nft fence) is withheld once it has run out', async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t);
    const w = worker1(t, dir);
    const { sys } = w;
    let until = Date.now() + 60_000;
    const licence = new Licence();
    licence.setSource({ until: () => until, downs: () => 0 });
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0, 300, 400, 500], dadProbeMs: 0 }, licence);
    const garps = () => sys.calls.filter((c) => c.op === 'arping' && c.arg === 'eth0 192.168.1.100').length;
    await waitFor(() => garps() === 1, 'the first announcement', 5000);
    // the controller stops acknowledging (a cut-off holder): the rest of the schedule is withheld
    until = Date.now() - 1000;
    await waitFor(() => (mod.status().garpsWithheld as number) >= 3, 'the three later announcements withheld', 5000);
    expect(garps(), 'announcements after the licence ran out').toBe(1);
  }, 20_000);

  it('conntrack sync: on taking a floating IP the replicated bindings are committed BEFORE the SNAT ruleset and the address', async () => {
    const { t, dir } = await controllerAndDir();
    for (const n of ['worker1', 'worker2']) renew(t, n);
    await nodeUp(t, 'worker2');
    await createGateway(t, ['192.168.1.100', '192.168.1.101']);
    const w = worker1(t, dir, { removeRulesOnStop: true });
    const { logs, sys } = w;
    // conntrackd runs on the same fake host: one order of operations
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'), 'worker1 takes 192.168.1.100', 5000);
    const at = (f: (c: { op: string; arg: string }) => boolean) => sys.calls.findIndex(f);
    const commit = at((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    const purge = at((c) => c.op === 'sh' && c.arg.includes("'conntrack' '-D' '-q' '192.168.1.101'"));
    const ruleset = at((c) => c.op === 'nft' && c.arg.includes('elements = { 192.168.1.100 }'));
    const addr = at((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0');
    expect(commit, JSON.stringify(sys.calls.map((c) => `${c.op} ${c.arg.slice(0, 40)}`))).toBeGreaterThan(-1);
    expect(purge).toBe(commit); // one shell: commit then purge
    expect(ruleset).toBeGreaterThan(purge);
    expect(addr).toBeGreaterThan(ruleset);
    expect(sys.calls[ruleset]!.arg).toContain('table ip egresslab_ctsync {\n');
    expect(sys.calls.some((c) => c.op === 'sysctl' && c.arg === 'net/netfilter/nf_conntrack_events=0')).toBe(true);
    expect(mod.status()).toMatchObject({ conntrackSync: { enabled: true, running: true, commits: 1, purges: 1 } });
    expect(logs.join('\n')).toMatch(/conntrack sync: committed \? replicated binding\(s\) in \d+ ms before taking 192\.168\.1\.100/);
    // a decommissioning stop removes the sync table with the fail-closed leftover
    await mod.stop();
    expect(sys.calls.filter((c) => c.op === 'nft').at(-1)!.arg).toMatch(/delete table ip egresslab_ctsync\n$/);
  }, 20_000);
  it('conntrack sync: a commit while a floating IP is out of the gateway still deletes the committed bindings of that IP (chaos seed 848037977)', async () => {
    const { t, dir } = await controllerAndDir();
    for (const n of ['worker1', 'worker2']) renew(t, n);
    await nodeUp(t, 'worker2');
    await createGateway(t, ['192.168.1.100', '192.168.1.101']);
    const w = worker1(t, dir, { removeRulesOnStop: true });
    const { sys } = w;
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    const adds = () => sys.calls.filter((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0').length;
    await waitFor(() => adds() === 1, 'worker1 takes 192.168.1.100', 5000);
    // both IPs leave the gateway (.101 was worker2's), then .100 comes back alone: worker1 takes it
    // again and commits while .101 is out of the gateway
    await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: [] } }, { namespace: 'kube-system' });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address del 192.168.1.100/32 dev eth0'), 'worker1 releases .100', 5000);
    const before = sys.calls.length;
    await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: ['192.168.1.100'] } }, { namespace: 'kube-system' });
    await waitFor(() => adds() === 2, 'worker1 takes 192.168.1.100 again', 5000);
    const commits = sys.calls.slice(before).filter((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    expect(commits.length).toBeGreaterThan(0);
    // the commit's shell deletes what it committed of .101: a peer's replicated binding of this
    // node's pod's flow through .101 would otherwise stay a local SNAT the guard drops
    expect(commits[0]!.arg).toContain("'conntrack' '-D' '-q' '192.168.1.101'");
    expect(commits[0]!.arg).not.toContain("'-q' '192.168.1.100'");
  }, 20_000);
  it('a pair made local without a re-commit: the final ruleset holds the segments of reply-made entries until the flush (session 38)', async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t);
    await seedAlice(t, [['fe', 'worker1', '10.10.10.1']]);
    const w = worker1(t, dir);
    const { sys } = w;
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: false });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'), 'worker1 takes 192.168.1.100', 5000);
    await waitFor(() => /policy egress: gateway is this node/.test(lastNft(sys)), 'alice/fe SNATed here', 5000);
    // the policy widens its destinations: alice/fe's new pair is local on the holder, no IP is taken
    const before = sys.calls.length;
    await t.admin.patch(R.egressNATPolicies, 'egress', { spec: { destinationCIDRs: ['8.8.0.0/16'] } });
    await waitFor(
      () => sys.calls.slice(before).some((c) => c.op === 'nft' && c.arg === 'delete chain ip egresslab_gw takeover_window\n'),
      'the window ends',
      5000,
    );
    const after = sys.calls.slice(before);
    const final = after.findIndex((c) => c.op === 'nft' && c.arg.includes('chain takeover_window {'));
    const flush = after.findIndex((c) => c.op === 'conntrack' && c.arg.includes('-D -s 8.8.0.0 --mask-src 255.255.0.0 -d 10.10.10.1'));
    const end = after.findIndex((c) => c.op === 'nft' && c.arg === 'delete chain ip egresslab_gw takeover_window\n');
    expect(
      { final: final >= 0, flushAfter: flush > final, endAfterFlush: end > flush },
      JSON.stringify(after.map((c) => `${c.op} ${c.arg.slice(0, 60)}`)),
    ).toEqual({
      final: true,
      flushAfter: true,
      endAfterFlush: true,
    });
    // in the same transaction as the ruleset that makes the pair local: the drop of the pod's
    // segments travelling in the reply direction of an entry without NAT
    const win = after[final]!.arg.slice(after[final]!.arg.indexOf('chain takeover_window {'));
    expect(
      win
        .slice(0, win.indexOf('\n\t}'))
        .split('\n')
        .filter((l) => l.includes('ct direction reply')),
    ).toEqual([
      '\t\tip saddr { 10.10.10.1 } ip daddr @p_egress_dst ct direction reply counter drop comment "policy egress: entry made by a reply while routed (no NAT), flushed next"',
    ]);
    // ... after the table that makes it local is re-created, in the same argument (one transaction)
    const text = after[final]!.arg;
    expect(text.indexOf('delete table ip egresslab_gw')).toBeGreaterThanOrEqual(0);
    expect(text.indexOf('delete table ip egresslab_gw')).toBeLessThan(text.indexOf('chain takeover_window {'));
    expect(text).toContain('policy egress: gateway is this node, SNAT here');
  }, 20_000);
  it("conntrack sync: a take that releases another IP in the same plan spares that IP's bindings in the commit before its final ruleset (session 38)", async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t, ['192.168.1.100']);
    const w = worker1(t, dir);
    const { sys } = w;
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    const added = (ip: string) => sys.calls.some((c) => c.op === 'ip' && c.arg === `address add ${ip}/32 dev eth0`);
    await waitFor(() => added('192.168.1.100'), 'worker1 takes 192.168.1.100', 5000);
    // .100 leaves, .101 comes (the only node Up takes it): one plan releases .100 and takes .101
    const before = sys.calls.length;
    await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: ['192.168.1.101'] } }, { namespace: 'kube-system' });
    await waitFor(() => added('192.168.1.101'), 'worker1 takes 192.168.1.101', 5000);
    const after = sys.calls.slice(before);
    const commit = after.findIndex((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    const ruleset = after.findIndex((c) => c.op === 'nft' && c.arg.includes('delete table ip egresslab_gw'));
    const released = after.findIndex((c) => c.op === 'ip' && c.arg === 'address del 192.168.1.100/32 dev eth0');
    // the commit comes before the final ruleset, which still SNATs .100 until then: the bindings
    // of the connections it carries through .100 stay (purged, they were SNATed again to new ports)
    expect({ commit: commit >= 0, beforeRuleset: commit < ruleset, rulesetBeforeRelease: ruleset < released }).toEqual({
      commit: true,
      beforeRuleset: true,
      rulesetBeforeRelease: true,
    });
    expect(after[commit]!.arg).not.toContain("'-q' '192.168.1.100'");
    // before anything of the release deletes a binding it made as the holder of .100, its
    // conntrackd forgot them (no deletion sent to the peers, whose copies a new holder commits)
    const forget = after.findIndex((c) => c.op === 'conntrackd' && c.arg.endsWith(' -f internal'));
    expect({ forget: forget >= 0, beforeCommit: forget < commit }).toEqual({ forget: true, beforeCommit: true });
    expect(mod.status()).toMatchObject({ conntrackSync: { forgets: 1 } });
    // and the released IP is not left to the kernel for ever: the next take's commit deletes it
    const later = sys.calls.length;
    await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: ['192.168.1.101', '192.168.1.102'] } }, { namespace: 'kube-system' });
    await waitFor(() => added('192.168.1.102'), 'worker1 takes 192.168.1.102', 5000);
    const next = sys.calls.slice(later).find((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    expect(next?.arg).toContain("'conntrack' '-D' '-q' '192.168.1.100'");
  }, 20_000);
  it("conntrack sync: a take of two IPs deletes, in each commit's shell, what the commit brought of each pair to the other IP (chaos seed 848038283)", async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t, ['192.168.1.100', '192.168.1.101']);
    // alice's frontend on worker1: 8.8.8.0/24 through .100 (POLICY), 1.1.1.0/24 through .101
    await seedAlice(t, [['fe', 'worker1', '10.10.10.1']]);
    await t.admin.create(R.egressNATPolicies, {
      ...POLICY,
      metadata: { name: 'other' },
      spec: { ...POLICY.spec, destinationCIDRs: ['1.1.1.0/24'], egressSourceIP: '192.168.1.101' },
    });
    // worker1 is the only node Up: both IPs are its own before its module starts (one take)
    await waitFor(async () => {
      const gw = await t.admin.tryGet(R.anthosNetworkGateways, 'default', 'kube-system');
      const ips = (gw?.status as { floatingIPs?: Record<string, string> } | undefined)?.floatingIPs ?? {};
      return ips['192.168.1.100'] === 'worker1' && ips['192.168.1.101'] === 'worker1';
    }, 'both IPs assigned to worker1');
    const w = worker1(t, dir);
    const { logs, sys } = w;
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    const added = (ip: string) => sys.calls.some((c) => c.op === 'ip' && c.arg === `address add ${ip}/32 dev eth0`);
    await waitFor(() => added('192.168.1.100') && added('192.168.1.101'), 'worker1 takes both IPs', 5000);
    const commits = sys.calls.filter((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    // the take's commit and the takeover window's (its own pod's pairs change: routed nowhere ->
    // SNATed here): each brings the whole external cache in again, each removes the same bindings
    expect(commits.length).toBe(2);
    const unbind = (dst: string, ip: string) => `-D -s 10.10.10.1 -d ${dst} --mask-dst 255.255.255.0 --reply-dst ${ip}`;
    for (const c of commits) {
      const lines = c.arg.split('\n');
      const commit = lines.findIndex((l) => l.includes(' -c || exit 3'));
      // in the batch after the commit: each pair's bindings to the other IP, never to its own
      expect(lines.indexOf(unbind('1.1.1.0', '192.168.1.100'))).toBeGreaterThan(commit);
      expect(lines.indexOf(unbind('8.8.8.0', '192.168.1.101'))).toBeGreaterThan(commit);
      expect(lines.filter((l) => l.startsWith('-D') && l.includes('--reply-dst'))).toHaveLength(2);
    }
    expect(mod.status()).toMatchObject({ conntrackSync: { commits: 2, unbinds: 4 } });
    expect(logs.join('\n')).toContain(
      "then deleted its bindings to a held IP that is not their flows' (2 deletion(s): 10.10.10.1 -> 1.1.1.0 mask 255.255.255.0: not 192.168.1.100; 10.10.10.1 -> 8.8.8.0 mask 255.255.255.0: not 192.168.1.101)",
    );
  }, 20_000);
  /**
   * worker2 holds .100, the IP of worker1's own pod (alice/fe, 8.8.8.0/24: routed to worker2);
   * policy other: 1.1.1.0/24 through .101, pods labelled app=x (`otherOnWorker1` puts one on
   * worker1). Returns `take`: worker1 Up and .101 added to the gateway, back once it is worker1's.
   */
  async function routedPod(t: TestController, otherOnWorker1: boolean): Promise<{ take: () => Promise<void> }> {
    renew(t, 'worker2');
    await nodeUp(t, 'worker2');
    await createGateway(t, ['192.168.1.100']);
    await seedAlice(t, [['fe', 'worker1', '10.10.10.1']]);
    if (otherOnWorker1) await runningPod(t, 'x', { app: 'x' }, 'worker1', '10.10.10.2');
    await t.admin.create(R.egressNATPolicies, {
      ...POLICY,
      metadata: { name: 'other' },
      spec: { egress: [{ podSelector: { matchLabels: { app: 'x' } } }], destinationCIDRs: ['1.1.1.0/24'], egressSourceIP: '192.168.1.101' },
    });
    const assigned = async () => {
      const gw = await t.admin.tryGet(R.anthosNetworkGateways, 'default', 'kube-system');
      return (gw?.status as { floatingIPs?: Record<string, string> } | undefined)?.floatingIPs ?? {};
    };
    await waitFor(async () => (await assigned())['192.168.1.100'] === 'worker2', '192.168.1.100 assigned to worker2');
    return {
      take: async () => {
        renew(t, 'worker1');
        await nodeUp(t, 'worker1');
        await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: ['192.168.1.100', '192.168.1.101'] } }, { namespace: 'kube-system' });
        await waitFor(async () => {
          const ips = await assigned();
          return ips['192.168.1.100'] === 'worker2' && ips['192.168.1.101'] === 'worker1';
        }, '192.168.1.101 assigned to worker1, 192.168.1.100 still to worker2');
      },
    };
  }
  const COMMIT = ' -c || exit 3';
  const EGRESS_FENCE = 'policy egress: reply de-NATed by another kernel';

  it("conntrack sync: a take's two commits fence the replies of the pods' connections through an IP held ELSEWHERE (session 37)", async () => {
    const { t, dir } = await controllerAndDir();
    await (await routedPod(t, true)).take();
    const w = worker1(t, dir);
    const { sys } = w;
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.101/32 dev eth0'), 'worker1 takes 192.168.1.101', 5000);
    const calls = sys.calls;
    const commits = calls.flatMap((c, i) => (c.op === 'sh' && c.arg.includes(COMMIT) ? [i] : []));
    // the take's commit and the re-commit (its pods' pairs of 'other' change: SNATed here now)
    expect(commits).toHaveLength(2);
    // first commit: the rules inserted into the table the agent found just before it, written out
    // (a new agent does not know that table's plan), for egress too (routed to worker2: the commit
    // brings worker2's bindings of alice/fe's connections in until its purge)
    const pre = calls
      .slice(0, commits[0])
      .filter((c) => c.op === 'nft')
      .at(-1)!.arg;
    expect(pre.split('\n').filter((l) => l.includes(EGRESS_FENCE))).toEqual([
      `insert rule ip egresslab_gw prerouting iifname "eth0" ip saddr { 8.8.8.0/24 } ip daddr { 10.10.10.1 } ct state new tcp flags & (syn | ack) != syn counter drop comment "${EGRESS_FENCE}"`,
    ]);
    // re-commit: the final ruleset's transaction carries the takeover window, with egress's drop in it
    const final = calls
      .slice(commits[0], commits[1])
      .filter((c) => c.op === 'nft' && c.arg.includes('table ip egresslab_gw {'))
      .at(-1)!.arg;
    const win = final.slice(final.indexOf('chain takeover_window {'));
    expect(
      win
        .slice(0, win.indexOf('\n\t}'))
        .split('\n')
        .filter((l) => l.includes(EGRESS_FENCE)),
    ).toHaveLength(1);
    // and the window ends after the re-commit
    expect(calls.slice(commits[1]).some((c) => c.op === 'nft' && c.arg === 'delete chain ip egresslab_gw takeover_window\n')).toBe(true);
  }, 20_000);

  it("conntrack sync: a restarted agent whose predecessor held an IP now held elsewhere spares that IP's bindings until its final ruleset, and forgets its own first (session 38)", async () => {
    const { t, dir } = await controllerAndDir();
    await (await routedPod(t, true)).take();
    const w = worker1(t, dir);
    // the previous agent held .100 (moved to worker2 while this one started): still on eth0
    const sys = new FakeHost({
      ipJson: {
        '-4 addr show': JSON.stringify([
          {
            ifname: 'eth0',
            addr_info: [
              { family: 'inet', local: '192.168.1.1', prefixlen: 24 },
              { family: 'inet', local: '192.168.1.100', prefixlen: 32 },
            ],
          },
        ]),
      },
      sysctls: { 'net/netfilter/nf_conntrack_events': '2' },
    });
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address del 192.168.1.100/32 dev eth0'), 'worker1 lets .100 go', 5000);
    const calls = sys.calls;
    const commits = calls.flatMap((c, i) => (c.op === 'sh' && c.arg.includes(COMMIT) ? [i] : []));
    expect(commits).toHaveLength(2);
    // the take's commit comes before the final ruleset: .100's bindings are the connections the old
    // table still SNATs; the re-commit, after it, purges them
    expect(calls[commits[0]!]!.arg).not.toContain("'-q' '192.168.1.100'");
    expect(calls[commits[1]!]!.arg).toContain("'conntrack' '-D' '-q' '192.168.1.100'");
    // conntrackd forgot its own bindings before the first deletion (its start flushes its dump too)
    const forgets = calls.flatMap((c, i) => (c.op === 'conntrackd' && c.arg.endsWith(' -f internal') ? [i] : []));
    expect(forgets).toHaveLength(2);
    expect(forgets.every((i) => i < commits[0]!)).toBe(true);
    expect(mod.status()).toMatchObject({ conntrackSync: { forgets: 1 } });
  }, 20_000);

  it('conntrack sync: an inserted fence never outlives its program(): the final ruleset replaces the table even when its text did not change', async () => {
    const { t, dir } = await controllerAndDir();
    // no pod of 'other' on worker1: taking .101 changes none of its pairs (no takeover window), and
    // alice/fe's pair stays routed to worker2: its fence is the one that must go
    const { take } = await routedPod(t, false);
    const w = worker1(t, dir);
    const { sys } = w;
    // worker1 programs its routed pair first (its module's first apply: no take, no commit)
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => sys.calls.some((c) => c.op === 'nft' && c.arg.includes('table ip egresslab_gw {')), "worker1's first ruleset", 5000);
    // the take applies its final ruleset, then fails at the address: the retry takes again with the
    // same ruleset text (and, no pair having changed, no takeover window)
    sys.failIpBatch((l) => l === 'address add 192.168.1.101/32 dev eth0', 'RTNETLINK answers: Device or resource busy');
    await take();
    await waitFor(
      () => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.101/32 dev eth0'),
      'worker1 takes 192.168.1.101 on the retry',
      10_000,
    );
    const calls = sys.calls;
    const commits = calls.flatMap((c, i) => (c.op === 'sh' && c.arg.includes(COMMIT) ? [i] : []));
    expect(commits).toHaveLength(2);
    const applies = calls.flatMap((c, i) => (c.op === 'nft' && c.arg.includes('table ip egresslab_gw {') ? [i] : []));
    for (const [k, at] of commits.entries()) {
      const pre = calls
        .slice(0, at)
        .filter((c) => c.op === 'nft')
        .at(-1)!.arg;
      expect(pre, `the nft transaction before commit ${k + 1}`).toContain(EGRESS_FENCE);
      // a full ruleset after each commit (and before the next one): the table, inserted rules and all, replaced
      expect(
        applies.some((i) => i > at && (k + 1 === commits.length || i < commits[k + 1]!)),
        `a full ruleset after commit ${k + 1}`,
      ).toBe(true);
    }
    // the second fence went into the table the first take applied: by the index of ITS sets
    const second = calls
      .slice(0, commits[1])
      .filter((c) => c.op === 'nft')
      .at(-1)!.arg;
    expect(second).toMatch(
      new RegExp(`^insert rule ip egresslab_gw prerouting iifname "eth0" ip saddr @p_[a-z0-9.-]+_dst ip daddr @p_[a-z0-9.-]+_src .*${EGRESS_FENCE}"$`, 'm'),
    );
  }, 20_000);
  it('conntrack sync: the floating IP history outlives the agent: a restarted agent still purges an IP that left the gateway before its start', async () => {
    const { t, dir } = await controllerAndDir();
    for (const n of ['worker1', 'worker2']) renew(t, n);
    await nodeUp(t, 'worker2');
    await createGateway(t, ['192.168.1.100', '192.168.1.101']);
    const w = worker1(t, dir);
    const { sys } = w;
    const adds = () => sys.calls.filter((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0').length;
    const first = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => adds() === 1, 'worker1 takes 192.168.1.100', 5000);
    expect(parseFloatingHistory(sys.files.get(join(dir, 'gateway-floating-ips-seen')) ?? null).sort()).toEqual(['192.168.1.100', '192.168.1.101']);
    // the agent stops (its IP stays: a clean stop); both IPs leave the gateway; a new agent starts
    // and takes .100 when it comes back alone: .101 never was in the new agent's gateway
    await first.stop();
    await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: [] } }, { namespace: 'kube-system' });
    // the plan's floating IPs include those the gateway's status still lists: the new agent must
    // not learn .101 from the API
    await waitFor(async () => {
      const gw = await t.admin.tryGet(R.anthosNetworkGateways, 'default', 'kube-system');
      return Object.keys((gw?.status as { floatingIPs?: Record<string, string> } | undefined)?.floatingIPs ?? {}).length === 0;
    }, 'the gateway status lists no floating IP');
    const before = sys.calls.length;
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await t.admin.patch(R.anthosNetworkGateways, 'default', { spec: { floatingIPs: ['192.168.1.100'] } }, { namespace: 'kube-system' });
    await waitFor(() => adds() === 2, 'worker1 takes 192.168.1.100 again', 5000);
    const commits = sys.calls.slice(before).filter((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    expect(commits.length).toBeGreaterThan(0);
    expect(commits[0]!.arg).toContain("'conntrack' '-D' '-q' '192.168.1.101'");
  }, 20_000);
  it('conntrack sync: a clean stop leaves conntrackd to the next agent, which adopts it; an agent with sync off stops it and puts the events back (chaos seed 848038224)', async () => {
    const { t, dir } = await controllerAndDir();
    for (const n of ['worker1', 'worker2']) renew(t, n);
    await nodeUp(t, 'worker2');
    await createGateway(t, ['192.168.1.100', '192.168.1.101']);
    const w = worker1(t, dir); // removeRulesOnStop: false, the default
    const { sys, logs } = w;
    const spawns = () => sys.calls.filter((c) => c.op === 'spawn').length;
    const first = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => (first.status() as { conntrackSync?: { running?: boolean } }).conntrackSync?.running === true, 'conntrackd running on worker1', 5000);
    await first.stop();
    expect(sys.calls.some((c) => c.op === 'kill')).toBe(false);
    expect(first.status()).toMatchObject({ conntrackSync: { enabled: true, running: false, leftForNextAgent: 4242 } });
    // the daemon lives on (the fake host's process table)
    sys.cmdlines.set(4242, `conntrackd -C ${conntrackdPaths().config}`);
    const second = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    expect(second.status()).toMatchObject({ conntrackSync: { running: true, adopted: true, adoptions: 1, starts: 0, pid: 4242 } });
    expect(spawns()).toBe(1);
    await second.stop();
    // sync turned off: the next agent stops the daemon and puts nf_conntrack_events back as the first agent found it
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: false });
    expect(sys.calls.filter((c) => c.op === 'killPid').map((c) => c.arg)).toEqual(['4242 SIGKILL']);
    expect(sys.sysctls.get('net/netfilter/nf_conntrack_events')).toBe('2');
    expect(logs.join('\n')).toContain('conntrack sync is off: stopping the conntrackd a previous agent left running (pid 4242)');
    expect(spawns()).toBe(1);
  }, 20_000);
  it("a node's own address in the gateway (or in a history an older agent wrote) is never ARP-fenced or purged: not this node's, not a peer's", async () => {
    const { t, dir } = await controllerAndDir();
    for (const n of ['worker1', 'worker2']) renew(t, n);
    await nodeUp(t, 'worker2');
    // worker1's own address and worker2's listed beside the floating IP; an older agent's history holds worker2's too
    await createGateway(t, ['192.168.1.100', '192.168.1.1', '192.168.1.2']);
    const w = worker1(t, dir);
    const { sys } = w;
    sys.files.set(join(dir, 'gateway-floating-ips-seen'), '192.168.1.2\n192.168.1.101\n');
    // ... and worker2's address is on worker1's uplink as a /32 (an older agent took it from a hand-written status)
    (sys as unknown as { ipAnswers: Record<string, string> }).ipAnswers['-4 addr show'] = JSON.stringify([
      {
        ifname: 'eth0',
        addr_info: [
          { family: 'inet', local: '192.168.1.1', prefixlen: 24 },
          { family: 'inet', local: '192.168.1.2', prefixlen: 32 },
        ],
      },
    ]);
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'), 'worker1 takes 192.168.1.100', 5000);
    const commits = sys.calls.filter((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    expect(commits.length).toBeGreaterThan(0);
    for (const c of commits) {
      expect(c.arg).toContain("'conntrack' '-D' '-q' '192.168.1.101'");
      expect(c.arg).not.toMatch(/'-q' '192\.168\.1\.[12]'/);
    }
    const fences = sys.calls.filter((c) => c.op === 'nft').flatMap((c) => [...c.arg.matchAll(/set floating \{ type ipv4_addr;([^}]*)\}/g)].map((m) => m[1]!));
    expect(fences.length).toBeGreaterThan(0);
    for (const f of fences) expect(f).not.toMatch(/192\.168\.1\.[12]\b/);
    // the peer's address is a leftover: removed; its own is never touched
    const ips = sys.calls.filter((c) => c.op === 'ip').map((c) => c.arg);
    expect(ips).toContain('address del 192.168.1.2/32 dev eth0');
    expect(ips.filter((a) => a.includes('192.168.1.1/') || a.includes('192.168.1.1 '))).toEqual([]);
  }, 20_000);
  it("an update that changes nothing the plan reads (a Node's Ready condition) is not planned; one that does (its InternalIP) is", async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t);
    await seedAlice(t, [['frontend-1', 'worker1', '10.10.10.1']]);
    const w = worker1(t, dir, { removeRulesOnStop: true });
    const mod = await startModule(w, { host: w.sys, heartbeat: false, garpScheduleMs: [0] });
    await waitFor(() => (mod.status().applies as number) >= 1, 'the first apply', 5000);
    const st = () => mod.status() as { plans: number; updatesIgnored: number };
    const plans = st().plans;
    const ignored = st().updatesIgnored;
    await t.admin.patch(
      R.nodes,
      'worker2',
      { status: { conditions: [{ type: 'Ready', status: 'False', reason: 'Test', lastHeartbeatTime: new Date().toISOString() }] } },
      { subresource: 'status' },
    );
    await waitFor(() => st().updatesIgnored > ignored, "worker2's Ready condition seen and ignored", 5000);
    expect(st().plans, 'plans after an update the plan does not read').toBe(plans);
    await t.admin.patch(R.nodes, 'worker2', { status: { addresses: [{ type: 'InternalIP', address: '192.168.1.22' }] } }, { subresource: 'status' });
    await waitFor(() => st().plans > plans, "a plan for worker2's new InternalIP", 5000);
    await mod.stop();
  }, 20_000);

  it('conntrack sync: conntrackd starts with the first plan that has a floating IP, before anything is SNATed; no gateway, no conntrackd', async () => {
    const { t, dir } = await controllerAndDir();
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await seedAlice(t, [['frontend-1', 'worker1', '10.10.10.1']]);
    const w = worker1(t, dir, { removeRulesOnStop: true });
    const { sys } = w;
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => (mod.status().applies as number) >= 1, 'the first apply', 5000);
    const spawned = () => sys.calls.findIndex((c) => c.op === 'spawn' && c.arg.startsWith('conntrackd '));
    expect(spawned(), 'conntrackd started without a gateway').toBe(-1);
    expect(mod.status()).toMatchObject({ conntrackSync: { enabled: true, running: false } });

    await createGateway(t);
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'), 'worker1 takes 192.168.1.100', 5000);
    const snat = sys.calls.findIndex((c) => c.op === 'nft' && c.arg.includes('snat to 192.168.1.100'));
    expect({ spawned: spawned() > -1, beforeSnat: spawned() < snat }, JSON.stringify(sys.calls.map((c) => `${c.op} ${c.arg.slice(0, 40)}`))).toEqual({
      spawned: true,
      beforeSnat: true,
    });
    expect(mod.status()).toMatchObject({ conntrackSync: { enabled: true, running: true } });
    await mod.stop();
  }, 20_000);

  it("conntrack sync: a node taking the IP of its own pods' policy holds their new mid-stream segments until their bindings are re-committed", async () => {
    const { t, dir } = await controllerAndDir();
    // worker2 alone is Up: it gets the IP; worker1's pod is routed to it
    const w2 = renew(t, 'worker2');
    await nodeUp(t, 'worker2');
    await createGateway(t);
    await seedAlice(t, [['frontend-1', 'worker1', '10.10.10.1']]);
    const w = worker1(t, dir, { removeRulesOnStop: true });
    const { sys } = w;
    const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => /to gateway worker2 \(192\.168\.1\.2\)/.test(lastNft(sys)), 'worker1 routes its pod to worker2', 5000);

    // worker1 comes Up, worker2 goes Down: worker1 takes the IP of its own pod's policy
    renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    const mark = sys.calls.length;
    await w2.stop();
    await waitFor(
      () => sys.calls.slice(mark).some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'),
      'worker1 takes 192.168.1.100',
      5000,
    );
    const after = sys.calls.slice(mark);
    const trace = JSON.stringify(after.map((c) => `${c.op} ${c.arg.slice(0, 60)}`));
    const at = (f: (c: { op: string; arg: string }) => boolean) => after.findIndex(f);
    const windowed = at((c) => c.op === 'nft' && c.arg.includes('snat to 192.168.1.100') && c.arg.includes('chain takeover_window {'));
    const second = at((c) => c.op === 'sh' && c.arg.includes("'conntrack' '-D' '-s' '10.10.10.1' '-d' '8.8.8.0' '--mask-dst' '255.255.255.0'"));
    const addr = at((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0');
    expect({ windowed: windowed >= 0, secondAfterWindow: second > windowed, addrAfterSecond: addr > second }, trace).toEqual({
      windowed: true,
      secondAfterWindow: true,
      addrAfterSecond: true,
    });
    // the window: the pod's non-SYN segments without an entry are dropped, for the policy's pairs
    expect(after[windowed]!.arg).toMatch(
      /chain takeover_window \{\n\t\ttype filter hook prerouting priority mangle - 10; policy accept;\n\t\tip saddr @p_egress_src ip daddr @p_egress_dst ct state new tcp flags & \(syn \| ack\) != syn counter drop/,
    );
    // the first commit (before the window) deletes what this node tracked towards the IP while it
    // did not hold it (a stray hairpin entry would keep a binding with its tuple out), then commits
    const first = at((c) => c.op === 'sh' && c.arg.includes(' -c || exit 3'));
    expect({ firstBeforeSecond: first >= 0 && first < second, lines: after[first]!.arg.replace(/^-c /, '').split('\n').slice(0, 4) }, trace).toEqual({
      firstBeforeSecond: true,
      lines: [
        "'conntrack' -R - >/dev/null 2>&1 <<'EOF' || { 'conntrack' '-D' '-d' '192.168.1.100' >/dev/null 2>&1; }",
        '-D -d 192.168.1.100',
        'EOF',
        expect.stringMatching(/^'conntrackd' -C '.*' -c \|\| exit 3$/),
      ],
    });
    // one shell: flush, then commit, in that order; no conntrack process of its own
    const script = after[second]!.arg;
    const iFlush = script.indexOf("'-D' '-s' '10.10.10.1'");
    const iCommit = script.indexOf(' -c || exit 3');
    expect({ flushFirst: script.split('\n')[0]!.includes("'-D' '-s' '10.10.10.1'"), commitAfterFlush: iCommit > iFlush }, script).toEqual({
      flushFirst: true,
      commitAfterFlush: true,
    });
    // the end of the window: the first nft apply after that shell, before the IP is added
    const iEnd = at((c) => c.op === 'nft' && c.arg === 'delete chain ip egresslab_gw takeover_window\n');
    const nftAfterShell = after.findIndex((c, i) => i > second && c.op === 'nft');
    expect({ endRightAfterShell: iEnd === nftAfterShell && iEnd > second, addrAfterEnd: addr > iEnd }, trace).toEqual({
      endRightAfterShell: true,
      addrAfterEnd: true,
    });
    expect(after.filter((c) => c.op === 'conntrack')).toEqual([]);
    // later applies (the decommissioning stop's) render no window
    await mod.stop();
    expect(lastNft(sys)).not.toContain('takeover_window');
  }, 20_000);
  it("conntrack sync: a holder that releases the IP of its policy keeps its bindings (its own pods' and the ones it forwarded) and loads them when it takes the IP back (nobody else has them)", async () => {
    const { t, dir } = await controllerAndDir();
    // worker1 alone is Up: it takes the IP of its own pod's policy, and forwards worker2's pod's
    let r1 = renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    await createGateway(t);
    await seedAlice(t, [
      ['frontend-1', 'worker1', '10.10.10.1'],
      ['frontend-2', 'worker2', '10.10.11.1'],
    ]);
    const w = worker1(t, dir, { removeRulesOnStop: true });
    const { sys } = w;
    const SAVED = [
      '-A -t 431990 -u SEEN_REPLY,ASSURED -s 10.10.10.1 -d 8.8.8.8 -r 8.8.8.8 -n 192.168.1.100 -p tcp --sport 36492 --dport 7007 --reply-port-src 7007 --reply-port-dst 36492 --state ESTABLISHED',
      // another node's pod SNATed here: not flushed at the release, but the commit of a take of
      // another IP would purge it before the IP comes back (regressions/removed-ip-retaken-after-another-take)
      '-A -t 431990 -u SEEN_REPLY,ASSURED -s 10.10.11.1 -d 8.8.8.8 -r 8.8.8.8 -n 192.168.1.100 -p tcp --sport 40000 --dport 7007 --reply-port-src 7007 --reply-port-dst 40000 --state ESTABLISHED',
      // a pod in no policy: not kept
      '-A -t 431990 -u SEEN_REPLY,ASSURED -s 10.10.12.7 -d 8.8.8.8 -r 8.8.8.8 -n 192.168.1.100 -p tcp --sport 40001 --dport 7007 --reply-port-src 7007 --reply-port-dst 40001 --state ESTABLISHED',
    ];
    sys.onExec = (cmd, args) =>
      cmd === 'conntrack' && args.join(' ') === '-L -p tcp -o save' ? { code: 0, stdout: `${SAVED.join('\n')}\n`, stderr: '' } : undefined;
    await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], conntrackSync: true });
    await waitFor(() => sys.calls.some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'), 'worker1 takes 192.168.1.100', 5000);

    // worker2 comes Up, worker1 goes Down: the IP moves, worker1 routes its pod to worker2
    const r2 = renew(t, 'worker2');
    await nodeUp(t, 'worker2');
    let mark = sys.calls.length;
    await r1.stop();
    await waitFor(() => /to gateway worker2 \(192\.168\.1\.2\)/.test(lastNft(sys)), 'worker1 routes its pod to worker2', 5000);
    const release = sys.calls.slice(mark);
    const iList = release.findIndex((c) => c.op === 'conntrack' && c.arg === '-L -p tcp -o save');
    const iFlush = release.findIndex((c) => c.op === 'conntrack' && c.arg.startsWith('-D -s 10.10.10.1 -d 8.8.8.0'));
    expect({ listed: iList >= 0, listedBeforeFlush: iList < iFlush }, JSON.stringify(release.map((c) => `${c.op} ${c.arg.slice(0, 60)}`))).toEqual({
      listed: true,
      listedBeforeFlush: true,
    });

    expect(w.logs.join('\n')).toMatch(
      /kept 2 binding\(s\) to 192\.168\.1\.100 \(of this node's pods and of the connections it forwarded\) for when it takes the IP back/,
    );

    // worker1 Up again, worker2 Down: worker1 takes the IP back and loads what it kept after the
    // flush of the pod's entries and the commit of the replicated bindings (those win over it)
    r1 = renew(t, 'worker1');
    await nodeUp(t, 'worker1');
    mark = sys.calls.length;
    await r2.stop();
    await waitFor(
      () => sys.calls.slice(mark).some((c) => c.op === 'ip' && c.arg === 'address add 192.168.1.100/32 dev eth0'),
      'worker1 takes 192.168.1.100 back',
      5000,
    );
    const take = sys.calls.slice(mark).find((c) => c.op === 'sh' && c.arg.includes('kept-bindings'))?.arg ?? '';
    const iD = take.indexOf("'-D' '-s' '10.10.10.1'");
    const iR = take.search(/'conntrack' -R '[^']*kept-bindings'/);
    const iC = take.indexOf(' -c || exit 3');
    expect({ flushThenCommit: iD >= 0 && iC > iD, commitThenLoad: iR > iC }, take).toEqual({ flushThenCommit: true, commitThenLoad: true });
    const file = [...sys.files].find(([k]) => k.endsWith('/kept-bindings'))?.[1] ?? '';
    // the own pod's binding and the forwarded one, each with its timeout less the time since the release
    const lines = file.trim().split('\n');
    expect(lines.map((l) => /-s (\S+) .*--sport (\d+) /.exec(l)?.slice(1).join(':'))).toEqual(['10.10.10.1:36492', '10.10.11.1:40000']);
    for (const l of lines) {
      expect(l).toMatch(/^-A -t \d+ -u SEEN_REPLY,ASSURED -s \S+ .* -n 192\.168\.1\.100 /);
      const left = Number(/-t (\d+)/.exec(l)?.[1]);
      expect(left).toBeLessThan(431990);
      expect(left).toBeGreaterThan(431990 - 30);
    }
    expect(w.logs.join('\n')).toMatch(/2 binding\(s\) of its own kept from the release loaded after them/);
  }, 30_000);
  describe('never programs from half-filled caches at start', () => {
    /** The seed policy, namespace and one matched pod on worker1; the API answers pod lists late. */
    async function rigWithSlowPods(delayMs: number, slowRef: unknown = R.pods) {
      const { t, dir } = await controllerAndDir();
      await seedAlice(t, [['frontend-1', 'worker1', '10.10.10.1']]);
      const w = worker1(t, dir);
      // every other list answers at once: the policies are known long before their pods
      const slow = new Proxy(w.client, {
        get(target, prop) {
          if (prop === 'list')
            return async (ref: unknown, opts: unknown) => {
              if (ref === slowRef) await new Promise((r) => setTimeout(r, delayMs));
              return (target.list as (a: unknown, b: unknown) => unknown)(ref, opts);
            };
          return Reflect.get(target, prop) as unknown;
        },
      });
      return { ...w, client: slow };
    }
    const tables = (sys: FakeHost) => sys.calls.filter((c) => c.op === 'nft' && c.arg.includes('delete table ip egresslab_gw'));

    it('waits for every first list: each ruleset drops or steers the matched pod', async () => {
      const w = await rigWithSlowPods(300);
      const { logs, sys } = w;
      await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0] });
      expect(logs.join('\n')).toMatch(/API state synced/);
      expect(tables(sys).length).toBeGreaterThan(0);
      // a ruleset with the policy but an empty source set would let the pod's traffic out un-NATed
      expect(
        tables(sys)
          .filter((c) => !c.arg.includes('set p_egress_src { type ipv4_addr; elements = { 10.10.10.1 } }'))
          .map((c) => c.arg),
      ).toEqual([]);
    });

    it('API not synced in time: the table the previous agent left stays until the caches are complete', async () => {
      const w = await rigWithSlowPods(600);
      const { logs, sys } = w;
      sys.tables.set('egresslab_gw', '# left fail-closed by the previous agent');
      await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], startupSyncTimeoutMs: 100 });
      expect(logs.join('\n')).toMatch(/API not synced after 100 ms: keeping table egresslab_gw as the previous agent left it until it is/);
      expect(tables(sys)).toEqual([]);
      await waitFor(() => tables(sys).length > 0, 'programmed once synced', 5000);
      expect(tables(sys)[0]!.arg).toContain('set p_egress_src { type ipv4_addr; elements = { 10.10.10.1 } }');
    });

    it('API not synced in time on a node with no datapath: programmed from what is known, but not programmed() until the caches are complete (the boot guard stays)', async () => {
      const w = await rigWithSlowPods(2000);
      const { logs, sys } = w;
      const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], startupSyncTimeoutMs: 100 });
      expect(logs.join('\n')).toMatch(/API not synced after 100 ms: programming fail-closed from what is known until it is/);
      // the premise: something was committed from the half-filled caches
      expect(tables(sys).length).toBeGreaterThan(0);
      expect(tables(sys).some((c) => c.arg.includes('set p_egress_src { type ipv4_addr; elements = { 10.10.10.1 } }'))).toBe(false);
      expect(mod.programmed()).toBe(false);
      await waitFor(() => mod.programmed(), 'programmed() once a plan from complete caches is committed', 5000);
      expect(tables(sys).at(-1)!.arg).toContain('set p_egress_src { type ipv4_addr; elements = { 10.10.10.1 } }');
    });

    it('a late list that changes nothing (no NetworkPolicy at all) still ends with a commit from complete caches: programmed()', async () => {
      const w = await rigWithSlowPods(2000, R.networkpolicies);
      const { logs, sys } = w;
      const mod = await startModule(w, { host: sys, heartbeat: false, garpScheduleMs: [0], startupSyncTimeoutMs: 100 });
      expect(logs.join('\n')).toMatch(/API not synced after 100 ms: programming fail-closed from what is known until it is/);
      const before = tables(sys).length;
      expect(before).toBeGreaterThan(0);
      expect(mod.programmed()).toBe(false);
      // the complete plan equals the half-synced one: only a forced apply commits it as this node's programming
      await waitFor(() => mod.programmed(), 'programmed() after the late sync', 5000);
      expect(tables(sys).at(-1)!.arg).toContain('set p_egress_src { type ipv4_addr; elements = { 10.10.10.1 } }');
    });
  });
});
