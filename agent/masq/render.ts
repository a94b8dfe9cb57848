/**
 * Pure rendering of the nftables transaction that programs masquerade for one node.
 *
 * Shape (IPv4; an `ip6` twin is added only when IPv6 is enabled and the node has an IPv6 pod CIDR):
 *
 *   table ip egresslab_masq {}             # make sure it exists, so that ...
 *   delete table ip egresslab_masq         # ... this never fails; then re-create it whole:
 *   table ip egresslab_masq {
 *     set podcidrs { type ipv4_addr; flags interval; elements = { <pod CIDRs> } }
 *     set nonmasq  { type ipv4_addr; flags interval; auto-merge; elements = { <normalised> } }
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
 */
import { type Cidr, type Family, formatCidr, normaliseCidrs, parseCidr } from '../../lib/net/addresses.js';
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

export interface RenderResult {
  /** Text for `nft -f -`. */
  ruleset: string;
  /** Tables this ruleset creates (for listing / drift checks). */
  tables: TableRef[];
  /** Normalised elements of the non-masquerade set(s). */
  nonMasqElements: string[];
  /** Number of set elements + rules programmed (for status). */
  ruleCount: number;
}

const NFT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

function quoteComment(s: string): string {
  // nft comments: double-quoted, max 128 bytes; keep it printable and quote-free.
  return `"${s.replace(/["\\\n\r]/g, ' ').slice(0, 120)}"`;
}

function toCidrs(list: readonly string[], what: string): { v4: Cidr[]; v6: Cidr[] } {
  const v4: Cidr[] = [];
  const v6: Cidr[] = [];
  for (const s of list) {
    const p = parseCidr(s);
    if (!p.ok) throw new Error(`${what}: ${p.message}`);
    (p.cidr.family === 4 ? v4 : v6).push(p.cidr);
  }
  return { v4, v6 };
}

function elementsBlock(cidrs: readonly Cidr[], indent: string): string {
  if (cidrs.length === 0) return '';
  const perLine = 8;
  const lines: string[] = [];
  for (let i = 0; i < cidrs.length; i += perLine) {
    lines.push(cidrs.slice(i, i + perLine).map(formatCidr).join(', '));
  }
  return `${indent}elements = { ${lines.join(`,\n${indent}             `)} }\n`;
}

interface FamilyPart {
  text: string;
  ruleCount: number;
}

function renderFamily(
  family: Family,
  table: string,
  pod: Cidr[],
  nonMasq: Cidr[],
  linkLocalExempt: boolean,
  opts: RenderOptions,
): FamilyPart {
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

  const t = '\t';
  let out = '';
  out += `table ${fam} ${table} {\n`;
  if (opts.comment) out += `${t}comment ${quoteComment(opts.comment)}\n`;
  out += `${t}set ${PODCIDR_SET} {\n${t}${t}type ${type}\n${t}${t}flags interval\n${t}${t}auto-merge\n`;
  out += elementsBlock(pod, `${t}${t}`);
  out += `${t}}\n`;
  out += `${t}set ${NONMASQ_SET} {\n${t}${t}type ${type}\n${t}${t}flags interval\n${t}${t}auto-merge\n`;
  out += elementsBlock(nonMasq, `${t}${t}`);
  out += `${t}}\n`;
  out += `${t}chain ${MASQ_CHAIN} {\n`;
  out += `${t}${t}type nat hook postrouting priority srcnat; policy accept;\n`;
  for (const r of rules) out += `${t}${t}${r}\n`;
  out += `${t}}\n`;
  out += `}\n`;
  return { text: out, ruleCount: rules.length + pod.length + nonMasq.length };
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
  const nm4 = normaliseCidrs(nm.v4);
  const nm6 = normaliseCidrs(nm.v6);

  let ruleset = '';
  ruleset += `# egresslab ip-masq-agent ruleset: one nft transaction (nft -f applies the file atomically)\n`;
  ruleset += dropTable('ip', table);
  ruleset += dropTable('ip6', table);
  const tables: TableRef[] = [];
  let ruleCount = 0;
  if (pods.v4.length > 0) {
    const p = renderFamily(4, table, normaliseCidrs(pods.v4), nm4, !config.masqLinkLocal, opts);
    ruleset += p.text;
    ruleCount += p.ruleCount;
    tables.push({ family: 'ip', name: table });
  }
  if (opts.enableIPv6 && pods.v6.length > 0) {
    // Upstream programs ip6tables only with --enable-ipv6; same here, in an ip6 twin table.
    const p = renderFamily(6, table, normaliseCidrs(pods.v6), nm6, !config.masqLinkLocalIPv6, opts);
    ruleset += p.text;
    ruleCount += p.ruleCount;
    tables.push({ family: 'ip6', name: table });
  }
  return {
    ruleset,
    tables,
    nonMasqElements: [...nm4, ...nm6].map(formatCidr),
    ruleCount,
  };
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
export type SnatFlavour =
  | { kind: 'agent'; config: MasqConfig }
  | { kind: 'default-snat' }
  | { kind: 'no-snat' };

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
