import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MasqAgent, type MasqAgentOptions, type MasqAgentState, nodeFs } from './agent.js';
import { DEFAULT_NON_MASQUERADE_CIDRS } from './constants.js';
import { FakeClock, FakeFs, MasqTable, nonMasqElements } from './testing/fakes.js';

const DIR = '/etc/config';
const CFG = '/etc/config/ip-masq-agent';
const STATE = '/run/egresslab/masq-state.json';
const DEFAULT_ELEMENTS = [...DEFAULT_NON_MASQUERADE_CIDRS].sort((a, b) => ipNum(a) - ipNum(b));
function ipNum(c: string): number {
  return c
    .split('/')[0]!
    .split('.')
    .reduce((n, o) => n * 256 + Number(o), 0);
}

interface Rig {
  agent: MasqAgent;
  clock: FakeClock;
  fsx: FakeFs;
  nft: MasqTable;
  logs: string[];
  events: { reason: string; message: string; type: string }[];
  state(): MasqAgentState;
}

const agents: MasqAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop({ removeRules: false });
});

function rig(setup: (fsx: FakeFs) => void = (f) => f.mkdir(DIR), over: Partial<MasqAgentOptions> = {}): Rig {
  const clock = new FakeClock();
  const fsx = new FakeFs();
  setup(fsx);
  const nft = new MasqTable();
  const logs: string[] = [];
  const events: Rig['events'] = [];
  const agent = new MasqAgent({
    host: nft.host,
    podCidrs: ['10.244.1.0/24'],
    configPath: CFG,
    statePath: STATE,
    fs: fsx,
    clock,
    log: (l) => logs.push(l),
    onEvent: (reason, message, type) => events.push({ reason, message, type }),
    ...over,
  });
  agents.push(agent);
  return {
    agent,
    clock,
    fsx,
    nft,
    logs,
    events,
    state: () => JSON.parse(fsx.written.get(STATE) ?? 'null') as MasqAgentState,
  };
}

describe('MasqAgent with fakes', () => {
  it('no config file: applies the default list and writes state', async () => {
    const r = rig();
    await r.agent.start();
    expect(r.nft.applied).toHaveLength(1);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    const st = r.state();
    expect(st).toMatchObject({ status: 'running', configSource: 'defaults', lastError: null, applies: 1, setElements: 11 });
    expect(st.configHash).toMatch(/^[0-9a-f]{16}$/);
    expect(st.ruleCount).toBeGreaterThan(11);
    expect(r.events.map((e) => e.reason)).toEqual(['MasqRulesApplied']);
  });

  it('a config change is applied after the debounce (well within 250 ms), without waiting for resync', async () => {
    const r = rig();
    await r.agent.start();
    r.fsx.replaceFile(CFG, 'nonMasqueradeCIDRs: [192.168.0.0/16, 0.0.0.0/0]\n');
    await r.clock.advance(25);
    expect(r.nft.installedNonMasq()).toEqual(['0.0.0.0/0']);
    expect(r.state()).toMatchObject({ configSource: 'file', applies: 2 });
  });

  it('in-place edits are seen through the file watch', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
    });
    await r.agent.start();
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8']);
    expect(r.fsx.watcherCount(CFG)).toBe(1);
    r.fsx.writeInPlace(CFG, 'nonMasqueradeCIDRs: [172.16.0.0/12]\n');
    await r.clock.advance(25);
    expect(r.nft.installedNonMasq()).toEqual(['172.16.0.0/12']);
  });

  it('bad config keeps the last good rules and reports field and value (log, event, state)', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
    });
    await r.agent.start();
    const good = r.nft.installed;
    r.fsx.replaceFile(CFG, 'nonMasqueradeCIDRs: [10.0.0.0/8, 10.0.0.1/8]\n');
    await r.clock.advance(25);
    expect(r.nft.applied).toHaveLength(1);
    expect(r.nft.installed).toBe(good);
    const line = r.logs.find((l) => l.includes('MasqConfigInvalid'));
    expect(line).toContain('field=nonMasqueradeCIDRs[1]');
    expect(line).toContain('value="10.0.0.1/8"');
    expect(line).toContain('keeping last good rules');
    expect(r.events.at(-1)).toMatchObject({ reason: 'MasqConfigInvalid', type: 'Warning' });
    const st = r.state();
    expect(st.lastError).toMatchObject({ reason: 'MasqConfigInvalid', errors: [{ field: 'nonMasqueradeCIDRs[1]', value: '"10.0.0.1/8"' }] });
    expect(st.applies).toBe(1);

    // the same error at the next resync: no new event (no spam), rules still the old ones
    const nEvents = r.events.length;
    await r.clock.advance(60_000);
    expect(r.events.length).toBe(nEvents);
    expect(r.nft.installed).toBe(good);

    // fixing the file applies it and clears the error
    r.fsx.replaceFile(CFG, 'nonMasqueradeCIDRs: [10.0.0.0/8, 192.168.0.0/16]\n');
    await r.clock.advance(25);
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(r.state().lastError).toBeNull();
  });

  it.each([
    ['unparsable YAML', '*'],
    ['number where a list belongs', 'nonMasqueradeCIDRs: 5\n'],
    ['IPv6 not enabled', 'nonMasqueradeCIDRs: ["fc00::/7"]\n'],
  ])('%s: rules untouched', async (_n, text) => {
    const r = rig();
    await r.agent.start();
    const before = r.nft.installed;
    r.fsx.replaceFile(CFG, text);
    await r.clock.advance(25);
    expect(r.nft.installed).toBe(before);
    expect(r.state().lastError?.reason).toBe('MasqConfigInvalid');
  });

  it('bad config at start: nothing is applied (existing kernel rules are left alone, like upstream)', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'masqLinkLocal: "yes please"\n');
    });
    r.nft.installed = 'previous run rules hook postrouting';
    await r.agent.start();
    expect(r.nft.applied).toHaveLength(0);
    expect(r.nft.installed).toBe('previous run rules hook postrouting');
    expect(r.state().lastError?.errors[0]?.field).toBe('masqLinkLocal');
  });

  it('file disappearing restores the defaults', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'nonMasqueradeCIDRs: []\n');
    });
    await r.agent.start();
    expect(r.nft.installedNonMasq()).toEqual([]);
    r.fsx.removeFile(CFG);
    await r.clock.advance(25);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    expect(r.state().configSource).toBe('defaults');
  });

  it('resync repairs rules removed or modified behind its back', async () => {
    const r = rig();
    await r.agent.start();
    r.nft.externalDelete();
    await r.clock.advance(59_000);
    expect(r.nft.installed).toBeNull();
    await r.clock.advance(1_000);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    expect(r.state().repairs).toBe(1);
    expect(r.events.at(-1)).toMatchObject({ reason: 'MasqRulesRepaired', type: 'Warning' });

    r.nft.externalModify();
    await r.clock.advance(60_000);
    expect(r.nft.installed).not.toContain('# tampered');
    expect(r.state().repairs).toBe(2);
  });

  it('resync with nothing changed does not re-apply; elements are listed at resync only, never on the apply path', async () => {
    const r = rig();
    await r.agent.start();
    // the apply took its baseline with one terse listing (no elements printed)
    expect(r.nft.host.calls.filter((c) => c.op === 'nftList').map((c) => c.arg)).toEqual(['-j -t ip egresslab_masq']);
    expect(r.nft.fullListCalls).toBe(0);
    const lists = r.nft.listCalls;
    await r.clock.advance(60_000 * 3);
    expect(r.nft.applied).toHaveLength(1);
    expect(r.nft.listCalls).toBe(lists + 3);
    expect(r.nft.fullListCalls).toBe(3); // one JSON listing per resync
    expect(r.state().repairs).toBe(0);
  });

  it('a resyncInterval longer than a timer can wait (720h) is clamped to 2^31-1 ms with a warning, not a hot loop', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'resyncInterval: 720h\n');
    });
    await r.agent.start();
    expect(r.state().warnings).toEqual([
      expect.objectContaining({ field: 'resyncInterval', value: '"720h"', message: expect.stringMatching(/longer than the longest timer/) }),
    ]);
    const listed = r.nft.listCalls;
    r.nft.externalDelete();
    await r.clock.advance(60_000);
    expect(r.nft.listCalls).toBe(listed); // no resync (hot loop) in the first minute
    expect(r.nft.installed).toBeNull();
    // the resync is scheduled at the clamped period (the longest pending timer), not 720 h
    expect(Math.max(...r.clock.pendingTimers())).toBe(2 ** 31 - 1 - 60_000);
  });

  it('resyncInterval from the config drives the resync period (with a 1 s floor)', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'resyncInterval: 5s\n');
    });
    await r.agent.start();
    r.nft.externalDelete();
    await r.clock.advance(5_000);
    expect(r.nft.installed).not.toBeNull();
    r.fsx.replaceFile(CFG, 'resyncInterval: "-1s"\n');
    await r.clock.advance(20); // debounce: the sync runs now and reschedules the resync in 1 s
    r.nft.externalDelete();
    await r.clock.advance(999);
    expect(r.nft.installed).toBeNull();
    await r.clock.advance(1);
    expect(r.nft.installed).not.toBeNull();
  });

  it('bad config still repairs the last good rules at resync', async () => {
    const r = rig();
    await r.agent.start();
    r.fsx.replaceFile(CFG, 'nonMasqueradeCIDRs: [nope]\n');
    await r.clock.advance(25);
    r.nft.externalDelete();
    await r.clock.advance(60_000);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    expect(r.state().lastError?.reason).toBe('MasqConfigInvalid');
  });

  it('nft failure is reported and retried at the next poll', async () => {
    const r = rig();
    r.nft.failNextApply('Error: Could not process rule: Operation not permitted');
    await r.agent.start();
    expect(r.nft.installed).toBeNull();
    expect(r.state().lastError).toMatchObject({ reason: 'MasqApplyFailed' });
    expect(r.events.at(-1)?.reason).toBe('MasqApplyFailed');
    await r.clock.advance(1_000);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    expect(r.state().lastError).toBeNull();
  });

  it('unreadable config file is an error, not "absent"', async () => {
    const r = rig();
    r.fsx.readError = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    await r.agent.start();
    expect(r.nft.applied).toHaveLength(0);
    expect(r.state().lastError?.errors[0]?.field).toBe('(file)');
  });

  it('config directory missing at start: fast poll picks it up when it appears', async () => {
    const r = rig(() => undefined);
    await r.agent.start();
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    r.fsx.dirs.add(DIR); // appears without any watchable event
    r.fsx.files.set(CFG, { text: 'nonMasqueradeCIDRs: [10.0.0.0/8]\n', id: '9:9' });
    await r.clock.advance(100 + 25);
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8']);
    expect(r.fsx.watcherCount(DIR)).toBe(1);
  });

  it('directory removed and recreated: watch re-armed', async () => {
    const r = rig();
    await r.agent.start();
    r.fsx.rmdir(DIR);
    await r.clock.advance(5_000); // the safety-net poll notices (no event for a removed directory here)
    r.fsx.mkdir(DIR);
    await r.clock.advance(100);
    expect(r.fsx.watcherCount(DIR)).toBe(1);
    r.fsx.replaceFile(CFG, 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
    await r.clock.advance(25);
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8']);
  });

  it('cosmetic change (comment, order of an equivalent list) does not re-apply', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'nonMasqueradeCIDRs: [10.0.0.0/8, 192.168.0.0/16]\n');
    });
    await r.agent.start();
    r.fsx.replaceFile(CFG, '# comment\nnonMasqueradeCIDRs: [192.168.0.0/16, 10.0.0.0/8, 10.1.0.0/16]\n');
    await r.clock.advance(25);
    expect(r.nft.applied).toHaveLength(1);
  });

  it('stop() leaves the rules in the kernel (SIGTERM path); stop({removeRules:true}) removes them (decommission)', async () => {
    const r = rig();
    await r.agent.start();
    const installed = r.nft.installed;
    await r.agent.stop();
    expect(r.nft.installed).toBe(installed);
    expect(r.nft.applied).toHaveLength(1);
    expect(r.state()).toMatchObject({ status: 'stopped', rulesRemoved: false });
    expect(r.logs.at(-1)).toContain('rules left in place');
    expect(r.events.map((e) => e.reason)).toEqual(['MasqRulesApplied']);
    expect(r.clock.pendingTimers()).toEqual([]);
    expect(r.fsx.watcherCount(DIR)).toBe(0);

    const r2 = rig();
    await r2.agent.start();
    await r2.agent.stop({ removeRules: true });
    expect(r2.nft.installed).toBeNull();
    expect(r2.nft.applied.at(-1)).toContain('delete table ip egresslab_masq');
    expect(r2.state()).toMatchObject({ status: 'stopped', rulesRemoved: true });
    expect(r2.events.at(-1)).toMatchObject({ reason: 'MasqRulesRemoved', type: 'Normal' });
  });

  it('a restart (stop, then a new agent on the same kernel) never leaves the kernel without the table, and the new agent takes over the config on disk', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
    });
    await r.agent.start();
    await r.agent.stop();
    // every transaction the kernel saw: only applies of the ruleset, never a bare removal
    const seen: (string | null)[] = [];
    const host = r.nft.host;
    const watched: MasqAgentOptions['host'] = {
      nftApply: async (text) => {
        await host.nftApply(text);
        seen.push(r.nft.installed);
      },
      nftList: (...a) => host.nftList(...a),
    };
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8']);
    const next = new MasqAgent({ host: watched, podCidrs: ['10.244.1.0/24'], configPath: CFG, fs: r.fsx, clock: r.clock, log: () => {} });
    agents.push(next);
    await next.start();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((t) => t !== null)).toBe(true);
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8']);
    expect(next.getState()).toMatchObject({ status: 'running', configSource: 'file', lastError: null });
  });

  it('changes during a sync are not lost (queued behind it)', async () => {
    const r = rig();
    await r.agent.start();
    r.fsx.replaceFile(CFG, 'nonMasqueradeCIDRs: [1.0.0.0/8]\n');
    await r.clock.advance(20);
    r.fsx.replaceFile(CFG, 'nonMasqueradeCIDRs: [2.0.0.0/8]\n');
    await r.clock.advance(25);
    expect(r.nft.installedNonMasq()).toEqual(['2.0.0.0/8']);
  });
});

// ---------------------------------------------------------------------------------------------
// Set updates in place, verification without listing what was just committed (issue 17)

const UPDATE = '# egresslab ip-masq-agent: set elements update, one nft transaction (nft -f applies the file atomically)\n';
const yamlList = (cidrs: readonly string[]): string => `nonMasqueradeCIDRs: [${cidrs.join(', ')}]\n`;
/** "rules applied:" / "rules repaired:" log lines */
const applyLines = (r: Rig): string[] => r.logs.filter((l) => /rules (applied|repaired):/.test(l));

describe('MasqAgent set updates (issue 17)', () => {
  it('elements only: one set update transaction, the exact text; no listing at all on the apply path', async () => {
    const r = rig();
    await r.agent.start();
    const lists = r.nft.listCalls;
    r.fsx.replaceFile(CFG, yamlList([...DEFAULT_ELEMENTS, '8.8.8.0/24']));
    await r.clock.advance(25);
    expect(r.nft.applied).toHaveLength(2);
    expect(r.nft.elementUpdates).toEqual([`${UPDATE}add element ip egresslab_masq nonmasq { 8.8.8.0/24 }\n`]);
    expect(r.nft.installedNonMasq()).toEqual(['8.8.8.0/24', ...DEFAULT_ELEMENTS]);
    expect(r.nft.listCalls).toBe(lists); // nothing listed after the update
    const line = applyLines(r).at(-1)!;
    expect(line).toMatch(
      /rules applied: .* setElements=12 masqLinkLocal=false \(\d+ ms, trigger=watch\) apply=delta \+1 -0 \[ip nonmasq: elements\] read=\d+ parse=\d+ render=\d+ commit=\d+ verify=0 total=\d+ ms$/,
    );
    expect(/\((\d+) ms, trigger=/.exec(line)).not.toBeNull(); // what bench/masq-scale.ts reads
    expect(r.state()).toMatchObject({
      applies: 2,
      setElements: 12,
      lastApply: { kind: 'delta', trigger: 'watch', added: 1, removed: 0, sets: ['ip nonmasq: elements'], fallback: null, stagesMs: { verify: 0 } },
    });
    expect(r.events.at(-1)).toMatchObject({ reason: 'MasqRulesApplied', message: expect.stringContaining('apply=delta +1 -0') });

    // 8.8.8.0/24 removed, 10.0.0.0/8 replaced by 10.0.0.0/9 + 10.128.0.0/10 (overlapping it): delete first, then add
    const next = [...DEFAULT_ELEMENTS.filter((c) => c !== '10.0.0.0/8'), '10.0.0.0/9', '10.128.0.0/10'];
    r.fsx.replaceFile(CFG, yamlList(next));
    await r.clock.advance(25);
    expect(r.nft.elementUpdates.at(-1)).toBe(
      `${UPDATE}delete element ip egresslab_masq nonmasq { 8.8.8.0/24, 10.0.0.0/8 }\nadd element ip egresslab_masq nonmasq { 10.0.0.0-10.191.255.255 }\n`,
    );
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS.map((c) => (c === '10.0.0.0/8' ? '10.0.0.0-10.191.255.255' : c)));
    expect(r.state().lastApply).toMatchObject({ kind: 'delta', added: 1, removed: 2 });
  });

  it('to an empty list: a lone flush; back from it: flush + add', async () => {
    const r = rig();
    await r.agent.start();
    r.fsx.replaceFile(CFG, yamlList([]));
    await r.clock.advance(25);
    expect(r.nft.elementUpdates).toEqual([`${UPDATE}flush set ip egresslab_masq nonmasq\n`]);
    expect(r.nft.installedNonMasq()).toEqual([]);
    expect(r.state().lastApply).toMatchObject({ kind: 'delta', added: 0, removed: 11, sets: ['ip nonmasq: flush'] });
    r.fsx.replaceFile(CFG, yamlList(['10.0.0.0/8', '192.168.0.0/16']));
    await r.clock.advance(25);
    expect(r.nft.elementUpdates.at(-1)).toBe(
      `${UPDATE}flush set ip egresslab_masq nonmasq\nadd element ip egresslab_masq nonmasq { 10.0.0.0/8, 192.168.0.0/16 }\n`,
    );
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(r.nft.fullListCalls).toBe(0);
  });

  it('filling a big set from empty: the table is re-created (cheaper for nft 1.0.6), with no listing (same rules)', async () => {
    const r = rig((f) => {
      f.mkdir(DIR);
      f.replaceFile(CFG, yamlList([]));
    });
    await r.agent.start();
    const lists = r.nft.listCalls;
    const big = Array.from({ length: 5_000 }, (_, i) => `${20 + (i >> 8)}.${i & 255}.0.0/24`);
    r.fsx.replaceFile(CFG, JSON.stringify({ nonMasqueradeCIDRs: big }));
    await r.clock.advance(25);
    expect(r.nft.applied).toHaveLength(2);
    expect(r.nft.elementUpdates).toEqual([]);
    expect(r.nft.installedNonMasq()).toHaveLength(5_000);
    expect(r.nft.listCalls).toBe(lists);
    expect(applyLines(r).at(-1)).toMatch(/setElements=5000 .*\(\d+ ms, trigger=watch\) apply=full \(cheaper than a set update\) .* verify=0 /);
    expect(r.state().lastApply).toMatchObject({ kind: 'full', reason: 'cheaper than a set update' });
    // the baseline still matches: the resync repairs nothing
    await r.clock.advance(60_000);
    expect(r.state().repairs).toBe(0);
    expect(r.nft.applied).toHaveLength(2);
    // and a small change to it is a set update again
    r.fsx.replaceFile(CFG, JSON.stringify({ nonMasqueradeCIDRs: [...big, '203.0.113.0/24'] }));
    await r.clock.advance(25);
    expect(r.nft.elementUpdates).toEqual([`${UPDATE}add element ip egresslab_masq nonmasq { 203.0.113.0/24 }\n`]);
  });

  it('a rule change re-creates the table and takes a new baseline with a terse listing', async () => {
    const r = rig();
    await r.agent.start();
    r.fsx.replaceFile(CFG, 'masqLinkLocal: true\n');
    await r.clock.advance(25);
    expect(r.nft.applied).toHaveLength(2);
    expect(r.nft.elementUpdates).toEqual([]);
    expect(r.nft.applied.at(-1)).toContain('delete table ip egresslab_masq\ntable ip6 egresslab_masq {}');
    expect(r.nft.applied.at(-1)).not.toContain('169.254.0.0/16');
    expect(r.nft.host.calls.filter((c) => c.op === 'nftList').map((c) => c.arg)).toEqual(['-j -t ip egresslab_masq', '-j -t ip egresslab_masq']);
    expect(applyLines(r).at(-1)).toMatch(/\(\d+ ms, trigger=watch\) apply=full \(rules changed\) read=/);
    expect(r.state().lastApply).toMatchObject({ kind: 'full', reason: 'rules changed', added: 0, removed: 0, sets: [], fallback: null });
  });

  it('a set update that fails (an element gone behind our back) is followed by the full re-create in the same sync', async () => {
    const r = rig();
    await r.agent.start();
    await r.nft.externalNft('delete element ip egresslab_masq nonmasq { 10.0.0.0/8 }\n');
    r.fsx.replaceFile(CFG, yamlList(DEFAULT_ELEMENTS.filter((c) => c !== '10.0.0.0/8' && c !== '172.16.0.0/12')));
    await r.clock.advance(25);
    expect(r.logs.some((l) => /set update failed \(Error: element does not exist\): re-creating the table instead/.test(l))).toBe(true);
    expect(r.nft.applied).toHaveLength(2); // start + the full one (the failed update changed nothing)
    expect(r.nft.applied.at(-1)).toMatch(/^table ip egresslab_masq \{$/m);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS.filter((c) => c !== '10.0.0.0/8' && c !== '172.16.0.0/12'));
    expect(applyLines(r).at(-1)).toMatch(/rules applied: .*\(\d+ ms, trigger=watch\) apply=full \(set update failed\) read=/);
    expect(r.state()).toMatchObject({
      applies: 2,
      lastError: null,
      lastApply: { kind: 'full', reason: 'set update failed', fallback: expect.stringMatching(/element does not exist/) },
    });
    expect(r.nft.listCalls).toBe(1); // the same rules re-created: the baseline taken at start still holds

    // the kernel is known again: the next change is a set update
    r.fsx.replaceFile(CFG, yamlList(DEFAULT_ELEMENTS));
    await r.clock.advance(25);
    expect(r.nft.elementUpdates).toEqual([`${UPDATE}add element ip egresslab_masq nonmasq { 10.0.0.0/8, 172.16.0.0/12 }\n`]);
  });

  it('table gone before an element change: the set update fails, the full apply brings it back', async () => {
    const r = rig();
    await r.agent.start();
    r.nft.externalDelete();
    r.fsx.replaceFile(CFG, yamlList(['10.0.0.0/8']));
    await r.clock.advance(25);
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8']);
    expect(r.state().lastApply).toMatchObject({ kind: 'full', fallback: expect.stringMatching(/No such file or directory/) });
  });

  it('both fail: reported as before, and the retry is a full apply (the sets are not trusted)', async () => {
    const r = rig();
    await r.agent.start();
    await r.nft.externalNft('delete element ip egresslab_masq nonmasq { 10.0.0.0/8 }\n');
    r.nft.failNextApply('Error: Could not process rule: No such file or directory'); // the update
    r.nft.failNextApply('Error: Could not process rule: Operation not permitted'); // the full apply
    r.fsx.replaceFile(CFG, yamlList(['10.0.0.0/8', '192.168.0.0/16']));
    await r.clock.advance(25);
    expect(r.state().lastError).toMatchObject({ reason: 'MasqApplyFailed' });
    await r.clock.advance(1_000);
    expect(r.nft.elementUpdates).toEqual([]);
    expect(r.nft.installedNonMasq()).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(r.state()).toMatchObject({ lastError: null, lastApply: { kind: 'full', trigger: 'retry', reason: 'after a failed set update' } });
  });

  it('resync: an element removed behind our back is detected and put back by a set update', async () => {
    const r = rig();
    await r.agent.start();
    await r.nft.externalNft('delete element ip egresslab_masq nonmasq { 10.0.0.0/8 }\n');
    await r.clock.advance(60_000);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    expect(r.nft.elementUpdates).toEqual([`${UPDATE}add element ip egresslab_masq nonmasq { 10.0.0.0/8 }\n`]);
    expect(r.logs).toContain('ip-masq-agent: set elements modified behind our back (ip nonmasq: 0 element(s) to remove, 1 to add): restoring them');
    expect(applyLines(r).at(-1)).toMatch(/rules repaired: .*\(\d+ ms, trigger=resync\) apply=delta \+1 -0 \[ip nonmasq: elements\] .* check=\d+ total=/);
    expect(r.state()).toMatchObject({ repairs: 1, lastApply: { kind: 'delta', trigger: 'resync' } });
    expect(r.events.at(-1)).toMatchObject({ reason: 'MasqRulesRepaired', type: 'Warning' });
    // and the next resync finds nothing to do
    await r.clock.advance(60_000);
    expect(r.state().repairs).toBe(1);
  });

  it("resync: elements added behind our back, one of them next to ours, are taken out: the kernel's own elements are deleted", async () => {
    const r = rig();
    await r.agent.start();
    await r.nft.externalNft('add element ip egresslab_masq nonmasq { 1.2.3.0/24, 9.0.0.0/8 }\n');
    // no auto-merge: 9.0.0.0/8 stays an element of its own beside our 10.0.0.0/8
    expect(r.nft.installedNonMasq()).toEqual(expect.arrayContaining(['9.0.0.0/8', '10.0.0.0/8']));
    await r.clock.advance(60_000);
    expect(r.nft.installedNonMasq()).toEqual(DEFAULT_ELEMENTS);
    expect(r.nft.elementUpdates).toEqual([`${UPDATE}delete element ip egresslab_masq nonmasq { 1.2.3.0/24, 9.0.0.0/8 }\n`]);
    expect(r.state().repairs).toBe(1);
  });

  it('resync: pod CIDR set emptied behind our back is restored too', async () => {
    const r = rig();
    await r.agent.start();
    await r.nft.externalNft('flush set ip egresslab_masq podcidrs\n');
    await r.clock.advance(60_000);
    expect(r.nft.host.setElements('ip', 'egresslab_masq', 'podcidrs')).toEqual(['10.244.1.0/24']);
    expect(r.nft.elementUpdates.at(-1)).toBe(`${UPDATE}flush set ip egresslab_masq podcidrs\nadd element ip egresslab_masq podcidrs { 10.244.1.0/24 }\n`);
  });

  it('IPv6 twin: both sets change in the one transaction', async () => {
    const r = rig(
      (f) => {
        f.mkdir(DIR);
        f.replaceFile(CFG, yamlList(['10.0.0.0/8', 'fc00::/7']));
      },
      { podCidrs: ['10.244.1.0/24', 'fd00:1::/64'], enableIPv6: true },
    );
    await r.agent.start();
    r.fsx.replaceFile(CFG, yamlList(['10.0.0.0/8', '172.16.0.0/12', 'fc00::/8']));
    await r.clock.advance(25);
    expect(r.nft.elementUpdates).toEqual([
      `${UPDATE}add element ip egresslab_masq nonmasq { 172.16.0.0/12 }\nflush set ip6 egresslab_masq nonmasq\nadd element ip6 egresslab_masq nonmasq { fc00::/8 }\n`,
    ]);
    expect(r.nft.host.setElements('ip6', 'egresslab_masq', 'nonmasq')).toEqual(['fc00::/8']);
    expect(r.state().lastApply).toMatchObject({ kind: 'delta', added: 2, removed: 1, sets: ['ip nonmasq: elements', 'ip6 nonmasq: flush'] });
  });

  it('stage timings: read, parse, render, commit, verify and the total, in the log line and the state file', async () => {
    const base = new FakeClock();
    let extra = 0;
    const clock = { now: () => base.now() + extra, setTimeout: base.setTimeout.bind(base), clearTimeout: base.clearTimeout.bind(base) };
    const nft = new MasqTable();
    const fsx = new FakeFs();
    fsx.mkdir(DIR);
    const slowFs = Object.assign(Object.create(fsx) as FakeFs, {
      readConfig: async (f: string) => ((extra += 3), fsx.readConfig(f)),
    });
    const host = {
      nftApply: async (t: string) => ((extra += 40), nft.host.nftApply(t)),
      nftList: async (...a: Parameters<typeof nft.host.nftList>) => ((extra += 5), nft.host.nftList(...a)),
    };
    const r = rig(undefined, { clock, fs: slowFs, host });
    await r.agent.start();
    expect(r.logs.find((l) => l.includes('rules applied:'))).toMatch(
      /\(45 ms, trigger=start\) apply=full \(first apply\) read=3 parse=0 render=0 commit=40 verify=5 total=48 ms$/,
    );
    fsx.replaceFile(CFG, yamlList([...DEFAULT_ELEMENTS, '8.8.8.0/24']));
    await base.advance(25);
    expect(applyLines(r).at(-1)).toMatch(
      /\(40 ms, trigger=watch\) apply=delta \+1 -0 \[ip nonmasq: elements\] read=3 parse=0 render=0 commit=40 verify=0 total=43 ms$/,
    );
    expect(JSON.parse(fsx.written.get(STATE)!)).toMatchObject({
      lastApply: { kind: 'delta', stagesMs: { read: 3, parse: 0, render: 0, commit: 40, verify: 0 }, totalMs: 43 },
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Real filesystem + real timers (still a fake nft): kubelet-style projected volume.

async function until<T>(fn: () => T | undefined, deadlineMs: number, what: string): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Mimic kubelet's AtomicWriter: new timestamped dir, ..data_tmp symlink renamed over ..data. */
function kubeletProject(dir: string, gen: number, files: Record<string, string>): void {
  const ts = path.join(dir, `..2025_01_01_00_00_0${gen}.000000000`);
  fs.mkdirSync(ts);
  for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(ts, k), v);
  const old = fs.existsSync(path.join(dir, '..data')) ? fs.readlinkSync(path.join(dir, '..data')) : null;
  fs.symlinkSync(path.basename(ts), path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const k of Object.keys(files)) {
    const link = path.join(dir, k);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', k), link);
  }
  if (old) fs.rmSync(path.join(dir, old), { recursive: true });
}

describe('MasqAgent on a real filesystem (fs.watch, kubelet ..data swaps)', () => {
  // how fast is bench/masq-propagation's figure (ConfigMap write -> every node programmed), not a
  // timed assertion here: this test proves the path (the watch, with the poll an hour away)
  it('applies each projected ConfigMap change via the watch (poll disabled)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'masq-'));
    try {
      kubeletProject(dir, 1, { 'ip-masq-agent': 'nonMasqueradeCIDRs: [10.0.0.0/8]\n' });
      const nft = new MasqTable();
      const statePath = path.join(dir, 'state', 'masq.json');
      const agent = new MasqAgent({
        host: nft.host,
        podCidrs: ['10.244.1.0/24'],
        configPath: path.join(dir, 'ip-masq-agent'),
        statePath,
        pollMs: 3_600_000, // prove the watch (not the poll) does it
        log: () => undefined,
      });
      agents.push(agent);
      await agent.start();
      expect(nft.installedNonMasq()).toEqual(['10.0.0.0/8']);

      for (let gen = 2; gen <= 6; gen++) {
        const want = `${gen}.0.0.0/8`;
        kubeletProject(dir, gen, { 'ip-masq-agent': `nonMasqueradeCIDRs: [${want}]\n` });
        await until(() => (nft.installedNonMasq()?.[0] === want ? true : undefined), 2_000, want);
        expect(nft.installedNonMasq()).toEqual([want]);
      }

      // ConfigMap deleted (optional volume): the file goes away -> defaults
      fs.rmSync(path.join(dir, 'ip-masq-agent'));
      await until(() => (nft.installedNonMasq()?.length === 11 ? true : undefined), 2_000, 'defaults');

      // the state file is written right after the apply
      const readState = () => JSON.parse(fs.readFileSync(statePath, 'utf8')) as MasqAgentState;
      const st = await until(() => (readState().configSource === 'defaults' ? readState() : undefined), 2_000, 'state file');
      expect(st).toMatchObject({ status: 'running', lastError: null, setElements: 11 });
      await agent.stop({ removeRules: true });
      expect(nft.installed).toBeNull();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sees in-place writes to a plain file (same inode) via the file watch', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'masq-'));
    try {
      const file = path.join(dir, 'ip-masq-agent');
      fs.writeFileSync(file, '{"nonMasqueradeCIDRs": ["10.0.0.0/8"]}');
      const nft = new MasqTable();
      const agent = new MasqAgent({ host: nft.host, podCidrs: ['10.244.1.0/24'], configPath: file, pollMs: 3_600_000, log: () => undefined });
      agents.push(agent);
      await agent.start();
      fs.writeFileSync(file, '{"nonMasqueradeCIDRs": ["11.0.0.0/8"]}');
      await until(() => (nft.installedNonMasq()?.[0] === '11.0.0.0/8' ? true : undefined), 2_000, 'in-place change');
      expect(nft.applied).toHaveLength(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('nodeFs.readConfig: missing, dangling symlink and directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'masq-'));
    try {
      expect(await nodeFs.readConfig(path.join(dir, 'nope'))).toEqual({ exists: false });
      fs.symlinkSync('..data/ip-masq-agent', path.join(dir, 'dangling'));
      expect(await nodeFs.readConfig(path.join(dir, 'dangling'))).toEqual({ exists: false });
      await expect(nodeFs.readConfig(dir)).rejects.toThrow(/directory/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fakes sanity', () => {
  it('nonMasqElements parses a rendered set', () => {
    expect(nonMasqElements('set nonmasq {\n type ipv4_addr\n elements = { 1.0.0.0/8, 2.0.0.0/8 }\n }')).toEqual(['1.0.0.0/8', '2.0.0.0/8']);
  });
});
