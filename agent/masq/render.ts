/**
 * Pure rendering of the nftables transaction that programs masquerade for one node.
 *
 * Shape (IPv4; an `ip6` twin is added only when IPv6 is enabled and the node has an IPv6 pod CIDR):
 *
 *   table ip egresslab_masq {}             # make sure it exists, so that ...
 *   delete table ip egresslab_masq         # ... this never fails; then re-create it whole:
 *   table ip egresslab_masq {
 *     set podcidrs { type ipv4_addr; flags interval; elements = { <pod CIDRs> } }
 *     set nonmasq  { type ipv4_addr; flags interval; elements = { <normalised, merged> } }
 *     chain postrouting {
 *       type nat hook postrouting priority srcnat; policy accept;
 *       meta mark & 0x2000 == 0x2000 return     # egress-gateway bypass hook
 *       ip saddr != @podcidrs return            # only pod traffic; hostNetwork keeps the node IP
 *       fib daddr type local return             # upstream: -m addrtype ! --dst-type LOCAL
 *       ip daddr 169.254.0.0/16 return          # unless masqLinkLocal
 *       ip daddr @nonmasq return
 *       masquerade fully-random                 # upstream default --random-fully
 *     }
 *   }
 *
 * `nft -f` applies a whole file as ONE netlink batch (one transaction): a packet sees either the old
 * table or the new one, never a mix, and a failing file changes nothing.
 *
 * Set elements are written exactly as the kernel will hold them (lib/net/intervals.ts): the
 * normalised CIDRs with adjacent blocks joined into one `first-last` range. So `RenderResult.sets` is
 * what the kernel holds after the apply, element for element, and an update that names elements to
 * delete (renderMasqSetDelta) names ones that exist.
 *
 * The sets have no `auto-merge`: the elements never overlap and never touch, so there is nothing to
 * merge, and nft 1.0.6's merge pass cost about 40 % of the commit of a 10,000-element set (user
 * 79-86 ms + sys 51-71 ms with it, 49-52 + 29-31 ms without, the same file in a lab node; issue 17).
 * Without it, an overlapping element is refused ("interval overlaps with an existing one") instead
 * of being merged silently, and the transaction changes nothing.
 *
 * When only the nonmasq elements change, renderMasqSetDelta gives a much smaller transaction that
 * updates the set in place (delete + add named elements, or flush + add): same atomicity, no table
 * re-created, no 10,000 elements re-parsed.
 */
import {
  type Cidr,
  cidr4KeyLast,
  cidr4KeyNetwork,
  type Family,
  formatCidr,
  formatCidr4Key,
  normaliseCidr4Keys,
  normaliseCidrs,
  parseCidr,
  parseCidr4Key,
} from '../../lib/net/addresses.js';
import { diffIntervals, formatInterval, formatInterval4, type Interval, intervalsOfCidr4Keys, intervalsOfCidrs } from '../../lib/net/intervals.js';
import { defaultMasqConfig, type MasqConfig } from './config.js';
import {
  EGRESS_GW_BYPASS_MARK,
  EGRESS_GW_BYPASS_MASK,
  LINK_LOCAL_CIDR,
  LINK_LOCAL_CIDR_IPV6,
  MASQ_CHAIN,
  MASQ_TABLE,
  NONMASQ_SET,
  PODCIDR_SET,
} from './constants.js';

export interface GatewayBypass {
  mark: number;
  mask: number;
}

export interface RenderOptions {
  /** The node's pod CIDR(s). Only packets sourced from these are ever masqueraded. */
  podCidrs: readonly string[];
  tableName?: string;
  /** Mark-based bypass for the egress gateway; null disables the rule. Default: constants. */
  gatewayBypass?: GatewayBypass | null;
  /** Free text put in the table comment (e.g. the flavour). */
  comment?: string;
  /** Upstream --enable-ipv6: also program an ip6 table when the node has an IPv6 pod CIDR. */
  enableIPv6?: boolean;
  /** Add `counter` to the return/masquerade rules (default true; handy for `nft list`). */
  counters?: boolean;
}

export interface TableRef {
  family: 'ip' | 'ip6';
  name: string;
}

/** A named set and the elements it holds. */
export interface SetContents {
  family: 'ip' | 'ip6';
  table: string;
  name: string;
  /** address family of the elements */
  addrFamily: Family;
  /** the elements, as the kernel holds them: sorted, disjoint, non-adjacent (lib/net/intervals.ts) */
  intervals: Interval[];
}

export interface RenderResult {
  /** Text for `nft -f -`. */
  ruleset: string;
  /** Tables this ruleset creates (for listing / drift checks). */
  tables: TableRef[];
  /** Normalised elements of the non-masquerade set(s). */
  nonMasqElements: string[];
  /** Number of set elements + rules programmed (for status). */
  ruleCount: number;
  /**
   * The ruleset with the nonmasq set elements left out: two renders with the same skeleton differ in
   * those elements only (same tables, chains, rules, flags, pod CIDRs), see renderMasqSetDelta.
   */
  skeleton: string;
  /** Every set the ruleset creates, with the elements the kernel holds once it is applied. */
  sets: SetContents[];
}

const NFT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

function quoteComment(s: string): string {
  // nft comments: double-quoted, max 128 bytes; keep it printable and quote-free.
  return `"${s.replace(/["\\\n\r]/g, ' ').slice(0, 120)}"`;
}

/** CIDR texts parsed and split by family: IPv4 as packed keys (cidr4Key), IPv6 as bigint Cidrs. */
function toCidrs(list: readonly string[], what: string): { v4: Float64Array; v6: Cidr[] } {
  const v4 = new Float64Array(list.length);
  let n4 = 0;
  const v6: Cidr[] = [];
  for (const s of list) {
    const key = parseCidr4Key(s);
    if (key !== null) {
      v4[n4++] = key;
      continue;
    }
    const p = parseCidr(s); // IPv6, or the message of an invalid text
    if (!p.ok) throw new Error(`${what}: ${p.message}`);
    if (p.cidr.family !== 6) throw new Error(`${what}: ${s}: parseCidr4Key and parseCidr disagree`); // cannot happen
    v6.push(p.cidr);
  }
  return { v4: v4.subarray(0, n4), v6 };
}

/** A set's elements: as the kernel holds them (intervals) and as nft text, one string each. */
interface SetElements {
  intervals: Interval[];
  texts: string[];
}

/**
 * The elements of an IPv4 set of the normalised CIDRs `norm` (normaliseCidr4Keys), whose texts are
 * `cidrTexts`: adjacent blocks joined (intervalsOfCidrs), on numbers. An element that is one block
 * reuses that block's text (formatInterval writes it the same way), so each address is formatted once.
 */
function setElements4(norm: Float64Array, cidrTexts: readonly string[]): SetElements {
  const pairs = intervalsOfCidr4Keys(norm);
  const count = pairs.length / 2;
  const intervals = new Array<Interval>(count);
  const texts = new Array<string>(count);
  let j = 0; // the first block of element i
  for (let i = 0; i < count; i++) {
    const first = pairs[2 * i]!;
    const last = pairs[2 * i + 1]!;
    intervals[i] = { first: BigInt(first), last: BigInt(last) };
    if (cidr4KeyLast(norm[j]!) === last) {
      texts[i] = cidrTexts[j]!; // one block (normalised blocks are disjoint: it starts at `first`)
      j++;
    } else {
      texts[i] = formatInterval4(first, last);
      while (j < norm.length && cidr4KeyNetwork(norm[j]!) <= last) j++;
    }
  }
  return { intervals, texts };
}

/** The elements of an IPv6 set of the normalised CIDRs `norm`, on bigints. */
function setElements6(norm: readonly Cidr[]): SetElements {
  const intervals = intervalsOfCidrs(norm);
  return { intervals, texts: elementTexts(6, intervals) };
}

/** The elements of a set of `keys` (IPv4, any order, overlaps allowed), and the normalised blocks' texts. */
function normalise4(keys: Float64Array): { cidrTexts: string[]; set: SetElements } {
  const norm = normaliseCidr4Keys(keys);
  const cidrTexts = new Array<string>(norm.length);
  for (let i = 0; i < norm.length; i++) cidrTexts[i] = formatCidr4Key(norm[i]!);
  return { cidrTexts, set: setElements4(norm, cidrTexts) };
}

const ELEMENTS_PER_LINE = 8;

/** `a, b, ...` wrapped every ELEMENTS_PER_LINE elements, continuation lines indented by `cont`. */
function elementList(elements: readonly string[], cont: string): string {
  const lineBreak = `,\n${cont}`;
  let text = '';
  for (let i = 0; i < elements.length; i++) {
    if (i > 0) text += i % ELEMENTS_PER_LINE === 0 ? lineBreak : ', ';
    text += elements[i]!;
  }
  return text;
}

function elementsBlock(elements: readonly string[], indent: string): string {
  if (elements.length === 0) return '';
  return `${indent}elements = { ${elementList(elements, `${indent}             `)} }\n`;
}

function elementTexts(family: Family, intervals: readonly Interval[]): string[] {
  return intervals.map((iv) => formatInterval(family, iv));
}

interface FamilyPart {
  text: string;
  skeleton: string;
  ruleCount: number;
  sets: SetContents[];
}

function renderFamily(family: Family, table: string, pod: SetElements, nonMasq: SetElements, linkLocalExempt: boolean, opts: RenderOptions): FamilyPart {
  const fam = family === 4 ? 'ip' : 'ip6';
  const type = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
  const ll = family === 4 ? LINK_LOCAL_CIDR : LINK_LOCAL_CIDR_IPV6;
  const counter = opts.counters === false ? '' : 'counter ';
  const bypass = opts.gatewayBypass === undefined ? { mark: EGRESS_GW_BYPASS_MARK, mask: EGRESS_GW_BYPASS_MASK } : opts.gatewayBypass;
  const rules: string[] = [];
  if (bypass) {
    rules.push(`meta mark & ${hex32(bypass.mask)} == ${hex32(bypass.mark)} return comment "egress gateway bypass"`);
  }
  rules.push(`${fam} saddr != @${PODCIDR_SET} return comment "only pod-sourced traffic"`);
  rules.push(`fib daddr type local return comment "local destinations"`);
  if (linkLocalExempt) rules.push(`${fam} daddr ${ll} ${counter}return comment "link-local is not masqueraded"`);
  rules.push(`${fam} daddr @${NONMASQ_SET} ${counter}return comment "nonMasqueradeCIDRs"`);
  rules.push(`${counter}masquerade fully-random comment "outbound traffic is subject to MASQUERADE"`);

  const podIv = pod.intervals;
  const nonMasqIv = nonMasq.intervals;
  const t = '\t';
  let head = '';
  head += `table ${fam} ${table} {\n`;
  if (opts.comment) head += `${t}comment ${quoteComment(opts.comment)}\n`;
  head += `${t}set ${PODCIDR_SET} {\n${t}${t}type ${type}\n${t}${t}flags interval\n`;
  head += elementsBlock(pod.texts, `${t}${t}`);
  head += `${t}}\n`;
  head += `${t}set ${NONMASQ_SET} {\n${t}${t}type ${type}\n${t}${t}flags interval\n`;
  const nonMasqBlock = elementsBlock(nonMasq.texts, `${t}${t}`);
  let tail = '';
  tail += `${t}}\n`;
  tail += `${t}chain ${MASQ_CHAIN} {\n`;
  tail += `${t}${t}type nat hook postrouting priority srcnat; policy accept;\n`;
  for (const r of rules) tail += `${t}${t}${r}\n`;
  tail += `${t}}\n`;
  tail += `}\n`;
  const addrFamily = family;
  return {
    text: head + nonMasqBlock + tail,
    skeleton: `${head}${t}${t}# ${NONMASQ_SET} elements\n${tail}`,
    ruleCount: rules.length + podIv.length + nonMasqIv.length,
    sets: [
      { family: fam, table, name: PODCIDR_SET, addrFamily, intervals: podIv },
      { family: fam, table, name: NONMASQ_SET, addrFamily, intervals: nonMasqIv },
    ],
  };
}

/** Lines that make `table <fam> <name>` disappear without failing when it does not exist. */
function dropTable(fam: 'ip' | 'ip6', name: string): string {
  return `table ${fam} ${name} {}\ndelete table ${fam} ${name}\n`;
}

function checkTableName(name: string): void {
  if (!NFT_NAME.test(name)) throw new Error(`invalid nftables table name ${JSON.stringify(name)}`);
}

/**
 * Render the full apply transaction for `config` on a node with `opts.podCidrs`.
 * Throws on programming errors (no pod CIDR, unparsable pod CIDR, invalid table name); config
 * CIDRs are expected to come from parseMasqConfig (already validated).
 */
export function renderMasqRuleset(config: MasqConfig, opts: RenderOptions): RenderResult {
  const table = opts.tableName ?? MASQ_TABLE;
  checkTableName(table);
  const pods = toCidrs(opts.podCidrs, 'pod CIDR');
  if (pods.v4.length + pods.v6.length === 0) throw new Error('renderMasqRuleset: at least one pod CIDR is required');
  const nm = toCidrs(config.nonMasqueradeCIDRs, 'nonMasqueradeCIDRs');
  // IPv4 on numbers (one sort, one merge, each address formatted once); IPv6 on bigints (issue 17).
  const nm4 = normalise4(nm.v4);
  const nm6 = normaliseCidrs(nm.v6);

  let ruleset = '';
  ruleset += `# egresslab ip-masq-agent ruleset: one nft transaction (nft -f applies the file atomically)\n`;
  ruleset += dropTable('ip', table);
  ruleset += dropTable('ip6', table);
  let skeleton = ruleset;
  const tables: TableRef[] = [];
  const sets: SetContents[] = [];
  let ruleCount = 0;
  const add = (p: FamilyPart, family: 'ip' | 'ip6'): void => {
    ruleset += p.text;
    skeleton += p.skeleton;
    ruleCount += p.ruleCount;
    sets.push(...p.sets);
    tables.push({ family, name: table });
  };
  if (pods.v4.length > 0) {
    add(renderFamily(4, table, normalise4(pods.v4).set, nm4.set, !config.masqLinkLocal, opts), 'ip');
  }
  if (opts.enableIPv6 && pods.v6.length > 0) {
    // Upstream programs ip6tables only with --enable-ipv6; same here, in an ip6 twin table.
    add(renderFamily(6, table, setElements6(normaliseCidrs(pods.v6)), setElements6(nm6), !config.masqLinkLocalIPv6, opts), 'ip6');
  }
  return {
    ruleset,
    tables,
    nonMasqElements: nm6.length === 0 ? nm4.cidrTexts : [...nm4.cidrTexts, ...nm6.map(formatCidr)],
    ruleCount,
    skeleton,
    sets,
  };
}

// ---------------------------------------------------------------------------------------------
// Set updates: the elements only, in place

/**
 * How one set is brought from its elements to the new ones:
 *  - `elements`: `delete element` the elements that go, then `add element` the ones that come;
 *  - `flush`: `flush set`, then `add element` every element of the new contents (if any).
 */
export type SetUpdateForm = 'elements' | 'flush';

export interface SetUpdate {
  family: 'ip' | 'ip6';
  table: string;
  name: string;
  form: SetUpdateForm;
  /** elements that come / go (whatever the form) */
  added: number;
  removed: number;
  /** elements the set holds afterwards */
  size: number;
}

export interface SetDelta {
  /** Text for `nft -f -`: every update in one transaction. */
  ruleset: string;
  /** One entry per set that changes (none: nothing to do). */
  updates: SetUpdate[];
  /** Sums over `updates`. */
  added: number;
  removed: number;
  /**
   * Re-creating the table(s) whole would cost nft less than this update (NFT_COST_US): a big set
   * filled from empty (0 -> 10,000: 124 vs 143 ms). Both are correct; the caller picks.
   */
  preferFull: boolean;
}

/**
 * What nft 1.0.6 (the lab image's) spends, in microseconds, measured on kernel 6.18 in a private
 * network namespace (medians of 9 interleaved runs with 10,000 elements, checked against 1,000; a
 * busy machine multiplies them all; ~25-40 ms of process start-up on top of everything):
 *
 *   0 -> 10,000      re-create 124 ms   flush + add 143 ms
 *   10,000 -> 10,000 with 500 replaced   re-create 184 ms   flush + add 159 ms
 *   10,000 -> 10,001 add element 111 ms   re-create 174 ms
 *   10,000 -> 0      re-create 114 ms   lone flush 41 ms
 *   0 -> 1,000       re-create 42 ms    flush + add 31 ms
 *   delete element: 100 deletions from 10,000 elements 0.6-1.3 s, 5,000 deletions 16-30 s
 *
 * so, per element: `add element` ~10 us; declared in a re-created set ~7 us, plus ~12 ms for the
 * re-create; `delete element` ~1 us per element the set holds (nft walks the set again for every
 * deletion). Elements the set holds before cost ~7 us each when elements are added or deleted
 * without a flush (nft reads them all back and merges with them), ~2 us after a flush (read back
 * only), ~6 us in a re-create (read back and freed), nothing for a lone flush. Only the ratios
 * matter: they pick the cheapest correct form; a wrong pick costs time, not correctness.
 */
export const NFT_COST_US = {
  add: 10,
  create: 7,
  recreate: 12_000,
  deletePerHeld: 1,
  heldUpdate: 7,
  heldFlushed: 2,
  heldRecreate: 6,
} as const;

/** Estimated cost of bringing one set from `fromSize` to `toSize` elements in the given form. */
function setUpdateCost(form: SetUpdateForm, fromSize: number, toSize: number, added: number, removed: number): number {
  const c = NFT_COST_US;
  if (form === 'flush') return toSize === 0 ? 0 : fromSize * c.heldFlushed + toSize * c.add;
  return fromSize * c.heldUpdate + added * c.add + removed * fromSize * c.deletePerHeld;
}

/**
 * The cheaper form for a set going from `fromSize` to `toSize` elements with `added` elements
 * coming and `removed` going (NFT_COST_US): `elements` for a few changes (with nft 1.0.6, fewer than
 * ~5 deletions whatever the size), `flush` when the deletions would cost more than adding
 * everything again, and always for an empty target (a lone `flush set`) or an empty source (a tie:
 * the flush makes the result exact even if stray elements crept in).
 */
export function chooseSetUpdateForm(fromSize: number, toSize: number, added: number, removed: number): SetUpdateForm {
  const elements = setUpdateCost('elements', fromSize, toSize, added, removed);
  return elements < setUpdateCost('flush', fromSize, toSize, added, removed) ? 'elements' : 'flush';
}

/** Estimated cost of re-creating tables that hold sets going from `from` to `to` (NFT_COST_US). */
function recreateCost(from: readonly SetContents[], to: readonly SetContents[]): number {
  const c = NFT_COST_US;
  const held = from.reduce((n, s) => n + s.intervals.length, 0);
  const created = to.reduce((n, s) => n + s.intervals.length, 0);
  return c.recreate + held * c.heldRecreate + created * c.create;
}

function setSpec(s: { family: string; table: string; name: string }): string {
  return `${s.family} ${s.table} ${s.name}`;
}

function elementCommand(verb: 'add' | 'delete', s: SetContents, intervals: readonly Interval[]): string {
  return `${verb} element ${setSpec(s)} { ${elementList(elementTexts(s.addrFamily, intervals), '\t')} }\n`;
}

/**
 * The commands that turn the set holding `from.intervals` into one holding `to.intervals` (same set),
 * or null when they hold the same elements. Deletions come before additions: an added element may
 * overlap or touch a deleted one (10.0.0.0/8 -> 10.0.0.0/9 + 10.128.0.0/10), never a kept one
 * (intervals.ts diffIntervals), so with the deletions done first no added element overlaps one the
 * set still holds (the sets have no auto-merge: an overlap would fail the transaction).
 */
export function renderSetUpdate(from: SetContents, to: SetContents): { text: string; update: SetUpdate } | null {
  if (setSpec(from) !== setSpec(to) || from.addrFamily !== to.addrFamily) {
    throw new Error(`renderSetUpdate: ${setSpec(from)} and ${setSpec(to)} are different sets`);
  }
  const { removed, added } = diffIntervals(from.intervals, to.intervals);
  if (removed.length === 0 && added.length === 0) return null;
  const form = chooseSetUpdateForm(from.intervals.length, to.intervals.length, added.length, removed.length);
  let text = '';
  if (form === 'flush') {
    text += `flush set ${setSpec(to)}\n`;
    if (to.intervals.length > 0) text += elementCommand('add', to, to.intervals);
  } else {
    if (removed.length > 0) text += elementCommand('delete', to, removed);
    if (added.length > 0) text += elementCommand('add', to, added);
  }
  return {
    text,
    update: { family: to.family, table: to.table, name: to.name, form, added: added.length, removed: removed.length, size: to.intervals.length },
  };
}

/**
 * One transaction that brings every set of `from` to its contents in `to` (matched by family, table
 * and name; sets whose elements are the same are left alone), or null when a set of `to` has no
 * counterpart in `from` (then only a full apply can create it).
 */
export function renderSetUpdates(from: readonly SetContents[], to: readonly SetContents[]): SetDelta | null {
  const before = new Map(from.map((s) => [setSpec(s), s]));
  let ruleset = `# egresslab ip-masq-agent: set elements update, one nft transaction (nft -f applies the file atomically)\n`;
  const updates: SetUpdate[] = [];
  let cost = 0;
  for (const s of to) {
    const prev = before.get(setSpec(s));
    if (!prev || prev.addrFamily !== s.addrFamily) return null;
    const u = renderSetUpdate(prev, s);
    if (!u) continue;
    ruleset += u.text;
    updates.push(u.update);
    cost += setUpdateCost(u.update.form, prev.intervals.length, s.intervals.length, u.update.added, u.update.removed);
  }
  return {
    ruleset,
    updates,
    added: updates.reduce((n, u) => n + u.added, 0),
    removed: updates.reduce((n, u) => n + u.removed, 0),
    preferFull: updates.length > 0 && recreateCost(from, to) < cost,
  };
}

/**
 * The in-place update from the rules in force (`prev`) to `next` when they differ only in the
 * elements of the nonmasq set(s) (same skeleton: tables, chains, rules, flags, pod CIDRs), else
 * null (the full ruleset re-creates the table). Pure; one transaction; `updates` is empty when the
 * two hold the same elements; `preferFull` says when the full ruleset is the cheaper way anyway.
 * Correct only while the kernel holds exactly `prev.sets`: a failure (an element someone else
 * deleted) means "apply the full ruleset instead".
 */
export function renderMasqSetDelta(prev: RenderResult, next: RenderResult): SetDelta | null {
  if (prev.skeleton !== next.skeleton) return null;
  return renderSetUpdates(prev.sets, next.sets);
}

/** The clean-stop transaction: removes every table this module may have created. */
export function renderMasqRemoval(tableName: string = MASQ_TABLE): string {
  checkTableName(tableName);
  return `# egresslab ip-masq-agent: remove all rules\n${dropTable('ip', tableName)}${dropTable('ip6', tableName)}`;
}

/**
 * Cluster SNAT flavours (SPEC 1 table):
 *  - agent:        the ip-masq-agent runs with `config` (use renderMasqRuleset via the agent);
 *  - default-snat: no agent, cluster created WITHOUT --disable-default-snat: the node's own default
 *                  SNAT, which behaves like the agent with the default list (and no link-local SNAT);
 *  - no-snat:      no agent, --disable-default-snat: no SNAT at all -> null (apply renderMasqRemoval
 *                  if the node may still carry rules from another flavour).
 */
export type SnatFlavour = { kind: 'agent'; config: MasqConfig } | { kind: 'default-snat' } | { kind: 'no-snat' };

export function renderFlavour(flavour: SnatFlavour, opts: RenderOptions): RenderResult | null {
  switch (flavour.kind) {
    case 'agent':
      return renderMasqRuleset(flavour.config, { comment: 'egresslab ip-masq-agent', ...opts });
    case 'default-snat':
      return renderMasqRuleset(defaultMasqConfig(), { comment: 'egresslab default SNAT (no ip-masq-agent, disableDefaultSnat=false)', ...opts });
    case 'no-snat':
      return null;
  }
}
