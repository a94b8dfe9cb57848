// The node agent's wiring against the real API server in-process (controller/testing.ts, https on
// 127.0.0.1) with real files in a temp dir and a fake nft. Synchronisation by polling with a
// deadline (waitFor), never by sleeping.
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { R } from '../lib/kube/client.js';
import { unreachablePort } from '../lib/kube/testing.js';
import { nodeToken, startTestController, waitFor, type TestController } from '../controller/testing.js';
import type { KubeObject } from '../lib/kube/types.js';
import { parseAgentConfig, type AgentConfig } from '../agent/config.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from '../agent/masq/constants.js';
import { MasqTable } from '../agent/masq/testing/fakes.js';
import { NodeAgent } from '../agent/node/agent.js';
import { BOOT_GUARD_TABLE } from '../agent/gateway/constants.js';
import { renderBootGuard } from '../agent/gateway/render.js';
import { NodeEventRecorder } from '../agent/node/node-events.js';

const LEASE = { renewIntervalMs: 50, expiryMs: 300, startupGraceMs: 300 };
const sortCidrs = (l: readonly string[]): string[] =>
  [...l].sort((a, b) => {
    const n = (c: string): number =>
      c
        .split('/')[0]!
        .split('.')
        .reduce((x, o) => x * 256 + Number(o), 0);
    return n(a) - n(b);
  });
const DEFAULTS = sortCidrs(DEFAULT_NON_MASQUERADE_CIDRS);

interface Rig {
  t: TestController;
  dir: string;
  cfg: AgentConfig;
  nft: MasqTable;
  agent: NodeAgent;
  logs: string[];
  status(): Record<string, any>;
}

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function rig(over: Record<string, unknown> = {}, opts: { writeToken?: boolean; t?: TestController } = {}): Promise<Rig> {
  const t = opts.t ?? (await startTestController({ lease: LEASE }));
  if (!opts.t) cleanup.push(() => t.close());
  const dir = mkdtempSync(join(tmpdir(), 'egresslab-agent-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const node = (over.nodeName as string | undefined) ?? 'worker1';
  writeFileSync(join(dir, 'ca.crt'), t.running.caCert!);
  if (opts.writeToken !== false) writeFileSync(join(dir, 'agent.token'), `${nodeToken(node)}\n`);
  const cfg = parseAgentConfig({
    nodeName: node,
    nodeIP: '192.168.1.1',
    podCIDRs: ['10.10.10.0/24'],
    apiServer: t.running.url,
    caFile: join(dir, 'ca.crt'),
    tokenFile: join(dir, 'agent.token'),
    flavour: 'ip-masq-agent',
    leaseRenewIntervalMs: LEASE.renewIntervalMs,
    ipMasqAgentConfigPath: join(dir, 'etc', 'ip-masq-agent', 'config'),
    masqStatePath: join(dir, 'run', 'masq-state.json'),
    statusPath: join(dir, 'run', 'agent-status.json'),
    statusIntervalMs: 100,
    ...over,
  });
  const nft = new MasqTable();
  const logs: string[] = [];
  const agent = new NodeAgent(cfg, { host: nft.host, write: (l) => logs.push(l), credentialsPollMs: 10, eventsFlushMs: 300 });
  cleanup.push(() => agent.stop());
  return { t, dir, cfg, nft, agent, logs, status: () => JSON.parse(readFileSync(cfg.statusPath, 'utf8')) as Record<string, any> };
}

async function gatewayNodeState(t: TestController, node: string): Promise<string | undefined> {
  const o = await t.admin.tryGet(R.anthosNetworkGatewayNodes, node, 'kube-system');
  return (o?.status as { state?: string } | undefined)?.state;
}

async function nodeEvents(t: TestController, node: string, reason: string): Promise<KubeObject[]> {
  return (await t.admin.list(R.events, { namespace: 'default', fieldSelector: `involvedObject.kind=Node,involvedObject.name=${node},reason=${reason}` })).items;
}

const cmConfig = (text: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'ip-masq-agent', namespace: 'kube-system' },
  data: { config: text },
});

describe('node agent (ip-masq-agent flavour) against the in-process API server', () => {
  it('renews its lease (node Up), projects the ConfigMap, programs it, reports bad config as a Node Event, and stops cleanly', async () => {
    const r = await rig();
    const { t, nft, cfg } = r;
    await r.agent.start();

    // lease -> Up, and the default list is programmed while no ConfigMap exists
    await waitFor(async () => (await gatewayNodeState(t, 'worker1')) === 'Up', 'worker1 Up');
    expect(await gatewayNodeState(t, 'worker2')).not.toBe('Up');
    expect(nft.installedNonMasq()).toEqual(DEFAULTS);
    expect(existsSync(cfg.ipMasqAgentConfigPath)).toBe(false);

    // ConfigMap created -> file projected kubelet-style -> new set in "the kernel"
    await t.admin.create(R.configmaps, cmConfig('nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 198.51.100.0/24\nresyncInterval: 60s\n'));
    await waitFor(() => existsSync(cfg.ipMasqAgentConfigPath) && readFileSync(cfg.ipMasqAgentConfigPath, 'utf8').includes('198.51.100.0/24'), 'file projected');
    expect(lstatSync(cfg.ipMasqAgentConfigPath).isSymbolicLink()).toBe(true);
    expect(readlinkSync(cfg.ipMasqAgentConfigPath)).toBe('..data/config');
    await waitFor(() => JSON.stringify(nft.installedNonMasq()) === JSON.stringify(['10.0.0.0/8', '198.51.100.0/24']), 'custom CIDRs programmed');

    // changed -> reprogrammed without a restart
    await t.admin.patch(R.configmaps, 'ip-masq-agent', { data: { config: '{"nonMasqueradeCIDRs": ["0.0.0.0/0"]}' } }, { namespace: 'kube-system' });
    await waitFor(() => JSON.stringify(nft.installedNonMasq()) === JSON.stringify(['0.0.0.0/0']), '0.0.0.0/0 programmed');
    const goodRuleset = nft.installed;

    // bad config -> last good rules stay, Warning Event on the Node (with its uid), error in the status file
    await t.admin.patch(R.configmaps, 'ip-masq-agent', { data: { config: 'nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n' } }, { namespace: 'kube-system' });
    const [ev] = await waitFor(async () => {
      const l = await nodeEvents(t, 'worker1', 'MasqConfigInvalid');
      return l.length ? l : undefined;
    }, 'MasqConfigInvalid Event');
    const node = await t.admin.get(R.nodes, 'worker1');
    expect(ev).toMatchObject({
      type: 'Warning',
      involvedObject: { kind: 'Node', name: 'worker1', uid: node.metadata.uid },
      source: { component: 'egresslab-agent', host: 'worker1' },
    });
    expect(String(ev!.message)).toContain('field=nonMasqueradeCIDRs[0] value="10.0.0.1/8"');
    expect(nft.installed).toBe(goodRuleset);
    await waitFor(() => r.status().masq?.lastError?.reason === 'MasqConfigInvalid', 'lastError in status');

    // ConfigMap deleted -> file removed -> defaults again, error cleared
    await t.admin.delete(R.configmaps, 'ip-masq-agent', 'kube-system');
    await waitFor(() => !existsSync(cfg.ipMasqAgentConfigPath), 'file removed');
    await waitFor(() => JSON.stringify(nft.installedNonMasq()) === JSON.stringify(DEFAULTS), 'defaults programmed');

    // the status file has what `egresslab status` shows
    const st = await waitFor(() => {
      const s = r.status();
      return s.masq?.configSource === 'defaults' && s.masq?.lastError === null && s.lease?.lastRenewedAt ? s : undefined;
    }, 'status up to date');
    expect(st).toMatchObject({ schema: 1, node: 'worker1', flavour: 'ip-masq-agent', phase: 'running', podCIDRs: ['10.10.10.0/24'] });
    expect(st.masq).toMatchObject({ mode: 'ip-masq-agent', status: 'running', setElements: 11 });
    expect(st.masq.configHash).toMatch(/^[0-9a-f]{16}$/);
    expect(st.masq.ruleCount).toBeGreaterThan(0);
    expect(Date.parse(st.masq.appliedAt)).toBeGreaterThan(0);
    expect(st.projection).toMatchObject({ synced: true, present: false, configMap: 'kube-system/ip-masq-agent[config]' });
    expect(st.lease.renewals).toBeGreaterThan(0);
    expect(st.events.posted).toBeGreaterThan(0);
    // the lease is renewed by the node identity
    expect((await t.admin.get(R.leases, 'worker1', 'kube-node-lease')).spec).toMatchObject({ holderIdentity: 'worker1' });

    // SIGTERM path: the rules stay in the kernel (a restart must not unmasquerade the node), the
    // lease is no longer renewed -> node Down
    const programmed = nft.installed;
    const appliedBeforeStop = nft.applied.length;
    await r.agent.stop();
    expect(nft.installed).toBe(programmed);
    expect(nft.applied.length).toBe(appliedBeforeStop);
    expect(r.status()).toMatchObject({ phase: 'stopped', masq: { status: 'stopped', rulesRemoved: false } });
    await waitFor(async () => (await gatewayNodeState(t, 'worker1')) === 'Down', 'worker1 Down after stop', 3000);
    expect(await nodeEvents(t, 'worker1', 'MasqRulesRemoved')).toHaveLength(0);
    expect(r.logs.some((l) => /agent\[worker1\] lease: stopped renewing/.test(l))).toBe(true);
  }, 20_000);

  it('starts the masquerade agent only after the first ConfigMap sync, so an existing ConfigMap is programmed first', async () => {
    const t = await startTestController({ lease: LEASE });
    cleanup.push(() => t.close());
    await t.admin.create(R.configmaps, cmConfig('nonMasqueradeCIDRs: [192.168.0.0/16]\n'));
    const r = await rig({}, { t });
    await r.agent.start();
    expect(r.nft.applied).toHaveLength(1);
    expect(r.nft.installedNonMasq()).toEqual(['192.168.0.0/16']);
  });

  it('keeps the previous projection when the API server is unreachable at start, and waits at most startupSyncTimeoutMs', async () => {
    const r = await rig({ apiServer: 'http://127.0.0.1:9', caFile: null, startupSyncTimeoutMs: 200 });
    const dir = join(r.dir, 'etc', 'ip-masq-agent');
    mkdirSync(join(dir, '..old'), { recursive: true });
    writeFileSync(join(dir, '..old', 'config'), 'nonMasqueradeCIDRs: [172.16.0.0/12]\n');
    const { symlinkSync } = await import('node:fs');
    symlinkSync('..old', join(dir, '..data'));
    symlinkSync('..data/config', join(dir, 'config'));
    await r.agent.start();
    expect(r.nft.installedNonMasq()).toEqual(['172.16.0.0/12']);
    expect(r.logs.some((l) => /no sync with the API server within 200 ms: going on with the previous projection/.test(l))).toBe(true);
    expect(r.logs.some((l) => /lease: renewal failed/.test(l))).toBe(true);
  });

  it('stops promptly on SIGTERM while it is still starting behind a partition (no handshake with the API server completes)', async () => {
    const u = await unreachablePort();
    cleanup.push(() => u.close());
    // the shipped startupSyncTimeoutMs (5 s): the projection is still waiting for its first sync when the stop comes
    const r = await rig({ apiServer: `http://127.0.0.1:${u.port}`, caFile: null });
    const started = r.agent.start();
    await waitFor(() => r.logs.some((l) => /projection: projecting/.test(l)), 'the projection waiting for its first sync');
    const t0 = performance.now();
    await r.agent.stop();
    const took = performance.now() - t0;
    await started;
    // the module's wait, the list in flight and the lease renewal in flight were given up: what is
    // left is the Events flush (eventsFlushMs 300 here)
    expect(took).toBeLessThan(2000);
    expect(r.logs.some((l) => /agent: stopped/.test(l))).toBe(true);
    expect(r.logs.some((l) => /no sync with the API server within/.test(l))).toBe(false);
  });

  it('waits for its credentials before talking to the API', async () => {
    const r = await rig({}, { writeToken: false });
    const started = r.agent.start();
    await waitFor(() => r.logs.some((l) => /waiting for credentials/.test(l)), 'waiting log');
    writeFileSync(r.cfg.tokenFile, nodeToken('worker1'));
    await started;
    await waitFor(async () => (await gatewayNodeState(r.t, 'worker1')) === 'Up', 'worker1 Up');
  });
});

describe("the boot hook's pod guard (gateway/render.ts renderBootGuard)", () => {
  const guard = () => renderBootGuard(['10.10.10.0/24'], ['10.10.11.0/24']);

  it('is deleted once the gateway and the masquerade have programmed the node, after their first commits', async () => {
    const r = await rig();
    r.nft.host.putTable(BOOT_GUARD_TABLE, guard());
    await r.agent.start();
    expect(r.nft.host.table(BOOT_GUARD_TABLE)).toBeNull();
    const applied = r.nft.host.applied;
    const lift = applied.findIndex((x) => x === `delete table ip ${BOOT_GUARD_TABLE}\n`);
    const masq = applied.findIndex((x) => /^table ip egresslab_masq \{/m.test(x));
    const gw = applied.findIndex((x) => /^table ip egresslab_gw \{/m.test(x));
    expect([masq >= 0, gw >= 0, lift > masq, lift > gw]).toEqual([true, true, true, true]);
    expect(r.logs.filter((l) => l.includes("lifted the boot hook's pod guard"))).toHaveLength(1);
    expect(r.agent.collectStatus()).toMatchObject({ phase: 'running' });
  });

  it('stays while a first apply fails and is retried, and goes once it succeeds; a node booted without it deletes nothing', async () => {
    const r = await rig();
    r.nft.host.putTable(BOOT_GUARD_TABLE, guard());
    // the gateway's first apply fails, then the masquerade's (or the gateway's retry at 0.5 s): one of
    // them is still waiting for its retry when the agent checks the guard at the end of its start
    r.nft.failNextApply('Error: Could not process rule: No buffer space available');
    r.nft.failNextApply('Error: Could not process rule: No buffer space available');
    await r.agent.start();
    expect(r.nft.host.table(BOOT_GUARD_TABLE)).toBe(guard());
    expect(r.logs.some((l) => /pod guard \(table ip egresslab_boot\) stays until [\w, ]+ programmed this node/.test(l))).toBe(true);
    expect(r.logs.some((l) => /gateway: apply failed \(retrying with back-off/.test(l))).toBe(true);
    await waitFor(() => r.nft.host.table(BOOT_GUARD_TABLE) === null, 'the guard lifted after the retry', 5000);

    const plain = await rig({ nodeName: 'worker2' }, { t: r.t });
    await plain.agent.start();
    expect(plain.nft.host.applied.some((x) => x.includes(BOOT_GUARD_TABLE))).toBe(false);
    expect(plain.logs.some((l) => l.includes("boot hook's pod guard"))).toBe(false);
  }, 20_000);
});

describe('node agent (other flavours)', () => {
  it('default-snat applies the default list once, posts an Event, runs no projection, and leaves the rules at stop', async () => {
    const r = await rig({ flavour: 'default-snat' });
    await r.agent.start();
    expect(r.nft.installedNonMasq()).toEqual(DEFAULTS);
    expect(r.nft.installed).toContain('egresslab default SNAT');
    await waitFor(async () => (await nodeEvents(r.t, 'worker1', 'DefaultSnatApplied')).length === 1, 'DefaultSnatApplied Event');
    await waitFor(async () => (await gatewayNodeState(r.t, 'worker1')) === 'Up', 'worker1 Up');
    expect(r.agent.collectStatus()).toMatchObject({ flavour: 'default-snat', masq: { mode: 'default-snat', status: 'running', setElements: 11 } });
    expect(r.agent.collectStatus().projection).toBeUndefined();
    const programmed = r.nft.installed;
    await r.agent.stop();
    expect(r.nft.installed).toBe(programmed);
  });

  it.each(['ip-masq-agent', 'default-snat'])('%s: removeRulesOnStop: true removes the masquerade table at stop (decommission)', async (flavour) => {
    const r = await rig({ flavour, removeRulesOnStop: true });
    await r.agent.start();
    expect(r.nft.installed).not.toBeNull();
    await r.agent.stop();
    expect(r.nft.installed).toBeNull();
    expect(r.nft.applied.at(-1)).toMatch(/^delete table ip egresslab_masq$/m);
    expect(r.status()).toMatchObject({ phase: 'stopped', masq: { status: 'stopped', rulesRemoved: true } });
  });

  it('none removes leftovers of another flavour and programs nothing', async () => {
    const r = await rig({ flavour: 'none' });
    r.nft.installed = 'table ip egresslab_masq { chain postrouting { type nat hook postrouting priority srcnat; masquerade } }';
    await r.agent.start();
    expect(r.nft.installed).toBeNull();
    expect(r.nft.applied).toHaveLength(1);
    expect(r.agent.collectStatus()).toMatchObject({ masq: { mode: 'none', ruleCount: 0 } });
    await r.agent.stop();
    expect(r.nft.applied).toHaveLength(1);
  });

  it('a node without a pod CIDR masquerades nothing even with the agent flavour', async () => {
    const r = await rig({ podCIDRs: [] });
    await r.agent.start();
    expect(r.nft.installed).toBeNull();
    expect(r.nft.applied).toEqual([expect.stringContaining('delete table ip egresslab_masq')]);
    expect(r.agent.collectStatus()).toMatchObject({ masq: { mode: 'none', reason: 'node has no pod CIDR: nothing to masquerade' } });
  });
});

describe('node Event recorder', () => {
  it('folds repeats into one Event with a count, and may only write Events about its own Node', async () => {
    const t = await startTestController({ lease: LEASE });
    cleanup.push(() => t.close());
    const logs: string[] = [];
    const rec = new NodeEventRecorder({ client: t.node('worker2'), node: 'worker2', log: (l) => logs.push(l) });
    rec.record('Warning', 'Test', 'same message');
    rec.record('Warning', 'Test', 'same message');
    rec.record('Normal', 'Test', 'other message');
    await waitFor(() => rec.stats().posted === 3, 'posted');
    const evs = await nodeEvents(t, 'worker2', 'Test');
    expect(evs.map((e) => [e.type, e.message, e.count]).sort()).toEqual([
      ['Normal', 'other message', 1],
      ['Warning', 'same message', 2],
    ]);
    expect(rec.stats()).toMatchObject({ recorded: 3, deduplicated: 1, dropped: 0, queued: 0 });
    // a recorder that claims another node is refused (403) and drops the event instead of retrying forever
    const liar = new NodeEventRecorder({ client: t.node('worker2'), node: 'worker1', log: (l) => logs.push(l) });
    liar.record('Normal', 'Spoof', 'not mine');
    await waitFor(() => liar.stats().dropped === 1, 'dropped');
    expect(liar.stats().lastError).toMatch(/Events about its own Node/);
    expect(await nodeEvents(t, 'worker1', 'Spoof')).toHaveLength(0);
    await rec.stop();
    await liar.stop();
  });
});
