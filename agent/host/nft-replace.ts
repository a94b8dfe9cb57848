/**
 * Replacing a whole nftables table without a moment in which its interval sets look empty.
 *
 * The renderers (agent/gateway/render.ts, agent/masq/render.ts, conntrack-sync.ts) write a table as
 * "ensure it exists, delete it, define it anew" in one `nft -f` transaction: the kernel commits it
 * whole. On the kernel of these machines (6.18.44) an interval set CREATED in the transaction misses
 * lookups for a moment after the new rules go live (likely because nft_set_rbtree looks up an array
 * that is only built at the end of the commit; only the behaviour below was measured here).
 * Measured in a lab container (--network none, one `nft -f` per iteration under a UDP flood through
 * a rule `ip daddr @s meta mark set 1`): 162 of 647,000 packets missed the set over 361 re-creations;
 * with the same set updated in place (flush set + add element) 0 of 617,400 over 338; a hash set
 * re-created 0 of 636,000 (`sh bench/nft-refill.sh` prints the first two side by side, and a third way: an
 * interval set written inline in a rule, new on every refill, missed 311 of 2,085,800 over 798 refills,
 * which is why the gateway's NetworkPolicy allow lists are named sets). In the gateway table a miss is a leak: a pod's packet that is neither
 * marked for the gateway nor caught by the guard leaves masqueraded with the node IP (seen once in
 * failover.test.ts, node-2's ip-masq-agent table counted exactly that one SYN); in the masquerade
 * table, `ip saddr != @podcidrs return` lets a pod's packet out with its own IP.
 *
 * So when the table's previous definition is known (the last one this host committed, or for a host
 * that has committed none yet, e.g. an agent just restarted, the kernel's listing of it: the first
 * apply of a restarted agent replaced the previous agent's table, and session 39 caught exactly
 * that moment leaking one pod segment with its own IP, unmarked and unjudged by the guard), the
 * "delete + define" becomes "keep + refill": flush the table's rules, declare and flush every set the
 * new definition has (existing sets keep their identity, only their elements change: in-place
 * updates never miss), delete the sets and chains only the previous definition had (or whose
 * declaration changed), then the definition as rendered adds the elements, chains and rules. Still
 * one transaction. A table that does not exist yet is created as rendered; ExecHost falls back to
 * the rendered text if the in-place form fails.
 */

/** One `table <family> <name> { ... }` block of a ruleset, and its named sets and chains. */
export interface TableDefinition {
  family: string;
  name: string;
  /** set name -> its declaration without elements */
  sets: Map<string, string>;
  /** chain name -> its base-chain header ("type ... hook ... priority ...; policy ...;"), '' for a regular chain */
  chains: Map<string, string>;
}

/** The index of the brace that closes the one opened at `open`. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) return -1;
      i = end;
    } else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * A set's declaration without its elements (`elements = { ... }` has no nested braces), in one
 * canonical form whether it was written on one line with `;` (the gateway's renderer), on several
 * (the masquerade renderer) or listed by the kernel (`nft list table`): `set s { type ipv4_addr
 * flags interval }`.
 */
function withoutElements(block: string): string {
  return block
    .replace(/elements\s*=\s*\{[^}]*\}\s*;?/g, '')
    .replace(/;/g, ' ')
    .replace(/\s*,\s*/g, ',')
    .replace(/\s+/g, ' ')
    .replace(/\s+}$/, ' }');
}

/** nft's named priorities (nft(8), "Standard priority names"), by family. */
const NAMED_PRIORITIES: Record<string, Record<string, number>> = {
  ip: { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 },
  ip6: { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 },
  inet: { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 },
  arp: { filter: 0 },
  netdev: { filter: 0 },
  bridge: { dstnat: -300, filter: -200, out: 100, srcnat: 300 },
};

/**
 * A base-chain header with its priority as a number: a renderer writes `srcnat + 20`, the kernel's
 * listing says `120` (nft names a priority only within 10 of a standard one). A name it does not
 * know stays as written.
 */
function numericPriority(family: string, head: string): string {
  return head.replace(/priority ([^;]+);/, (whole, p: string) => {
    const m = /^\s*(?:(-?\d+)|([a-z]+)(?:\s*([+-])\s*(\d+))?)\s*$/.exec(p);
    if (!m) return whole;
    if (m[1] !== undefined) return `priority ${Number(m[1])};`;
    const base = NAMED_PRIORITIES[family]?.[m[2]!];
    if (base === undefined) return whole;
    return `priority ${base + (m[3] === '-' ? -1 : 1) * Number(m[4] ?? 0)};`;
  });
}

/** The sets and chains of the `table F T { ... }` block whose opening brace is at `open`. */
function definitionAt(ruleset: string, open: number, family: string, name: string): TableDefinition | null {
  const close = closingBrace(ruleset, open);
  if (close < 0) return null;
  const body = ruleset.slice(open + 1, close);
  const sets = new Map<string, string>();
  const chains = new Map<string, string>();
  for (const s of body.matchAll(/^[ \t]*(set|map|chain) (\S+) \{/gm)) {
    const start = open + 1 + s.index!;
    const o = start + s[0].length - 1;
    const c = closingBrace(ruleset, o);
    if (c < 0) return null;
    const block = ruleset.slice(start, c + 1).trim();
    if (s[1] === 'chain') {
      const head = /type [^;]+;(?:\s*policy \w+;)?/.exec(block);
      chains.set(s[2]!, head ? numericPriority(family, head[0].replace(/\s+/g, ' ')) : '');
    } else sets.set(s[2]!, withoutElements(block));
  }
  return { family, name, sets, chains };
}

/**
 * The full definitions of a ruleset: for each "delete table F T" (the renderers' re-creation), the
 * first non-empty `table F T { ... }` block after it. Other blocks of the same table are additions
 * (e.g. the takeover window's chain, which something else deletes later): they are not part of what
 * the table is defined as.
 */
export function tableDefinitions(ruleset: string): TableDefinition[] {
  const out: TableDefinition[] = [];
  for (const d of ruleset.matchAll(/^delete table (\S+) (\S+)$/gm)) {
    const [family, name] = [d[1]!, d[2]!];
    // the renderers write a definition as `table F T {` at the start of a line, its body on the next
    const head = `\ntable ${family} ${name} {\n`;
    const at = ruleset.indexOf(head, d.index! + d[0].length);
    if (at < 0) continue;
    const def = definitionAt(ruleset, at + head.length - 2, family, name);
    if (def) out.push(def);
  }
  return out;
}

/**
 * The definition of `table F T` as the kernel lists it (`nft -s list table F T`), or null when the
 * listing has no such table. What a host that has not committed the table itself (an agent just
 * restarted) refills in place: the kernel's sets keep their identity (see the file comment).
 */
export function listedDefinition(listing: string, family: string, name: string): TableDefinition | null {
  const head = `table ${family} ${name} {`;
  // at the start of a line: `\n` + listing puts the first line's start after a newline too
  const at = `\n${listing}`.indexOf(`\n${head}`);
  if (at < 0) return null;
  return definitionAt(listing, at + head.length - 1, family, name);
}

const key = (d: { family: string; name: string }): string => `${d.family} ${d.name}`;

/**
 * The ruleset with each "table F T {}\ndelete table F T\n" whose table is defined again in the same
 * ruleset and whose previous definition is in `previous` rewritten as an in-place refill (see the
 * file comment). Tables not defined again (removals) and tables with no previous definition keep the
 * rendered re-creation. Returns the text unchanged when nothing applies.
 */
export function inPlaceReplace(ruleset: string, previous: ReadonlyMap<string, TableDefinition>, definitions = tableDefinitions(ruleset)): string {
  const defs = new Map(definitions.map((d) => [key(d), d]));
  return ruleset.replace(/^table (\S+) (\S+) \{\}\ndelete table \1 \2\n/gm, (whole, family: string, name: string) => {
    const next = defs.get(`${family} ${name}`);
    const prev = previous.get(`${family} ${name}`);
    if (!next || !prev) return whole;
    const lines = [`table ${family} ${name} {}`];
    // objects whose declaration changed cannot be declared again over the old one: deleted first
    // (after the flush, no rule refers to them); those only the previous definition had go too
    const staleChains = [...prev.chains].filter(([c, head]) => next.chains.get(c) !== head).map(([c]) => c);
    const staleSets = [...prev.sets].filter(([s, decl]) => next.sets.get(s) !== decl).map(([s]) => s);
    lines.push(`flush table ${family} ${name}`);
    for (const c of staleChains) lines.push(`delete chain ${family} ${name} ${c}`);
    for (const s of staleSets) lines.push(`delete set ${family} ${name} ${s}`);
    const keep = [...next.sets.keys()].filter((s) => prev.sets.has(s) && !staleSets.includes(s));
    for (const s of keep) lines.push(`flush set ${family} ${name} ${s}`);
    return `${lines.join('\n')}\n`;
  });
}

/** What `previous` becomes once `ruleset` is committed: its definitions replace those of the same tables; a table only deleted is forgotten. */
export function afterCommit(
  previous: ReadonlyMap<string, TableDefinition>,
  ruleset: string,
  definitions = tableDefinitions(ruleset),
): Map<string, TableDefinition> {
  const next = new Map(previous);
  for (const m of ruleset.matchAll(/^delete table (\S+) (\S+)$/gm)) next.delete(`${m[1]} ${m[2]}`);
  for (const d of definitions) next.set(key(d), d);
  return next;
}
