/**
 * Conntrack state sync between gateway candidates (issue 6, "beyond every peer"; docs/gateway.md).
 *
 * Every node runs conntrackd once the gateway has a floating IP (gateway-module.ts
 * ensureConntrackSync; NOTRACK mode, multicast on the node segment only: the uplink, with
 * the node IP as the multicast interface address). What it replicates is chosen in the KERNEL, not
 * by conntrackd's filters (those only look at the original source and the reply source, which are
 * the same for a holder's SNAT entry and for the source node's un-NATed entry of the same flow):
 * conntrack events are off by default on the node (`net.netfilter.nf_conntrack_events = 0`) and
 * table `ip egresslab_ctsync` turns them on (`ct event set ...`) for new connections whose source,
 * after NAT, is a floating IP this node holds — the egress_snat bindings, nothing else. So each
 * node's internal cache (and its peers' external caches) holds only the holders' SNAT bindings.
 * conntrackd's own startup dump of the kernel table bypasses events: it is flushed
 * (`-f internal`) as soon as the daemon answers.
 *
 * When the node takes a floating IP, the agent commits the external cache into the kernel
 * (`conntrackd -c`) BEFORE the nft commit that makes it SNAT and before `ip addr add`, so the
 * first segment of an established flow that reaches the new holder already finds its binding
 * (original pod IP:port -> floating IP:port, exactly as on the old holder) instead of being
 * picked up as a new flow. `conntrackd -c` commits the WHOLE external cache and replaces existing
 * entries with the same original tuple: bindings of floating IPs held elsewhere would turn this
 * node's own (un-NATed) entries of its pods' flows through those IPs into local SNATs that the
 * guard drops, so they are deleted right after the commit (`conntrack -D --reply-dst IP`; the next
 * packet re-creates the un-NATed entry). Entries made by a commit or deleted by `conntrack -D`
 * emit no events (events are off by default), so none of this echoes to the peers.
 *
 * Pure parts (config, nft table, parsing) are exported for unit tests; the daemon is supervised
 * (restarted with a back-off if it exits). A clean stop of the agent (SIGTERM, without
 * removeRulesOnStop) LEAVES it running, like the rest of the datapath, and the next agent adopts
 * it, as it adopts the daemon of an agent that crashed (same pid file, command line and config,
 * its startup dump flushed, answering on its socket): its caches, the external one above all,
 * survive an agent restart. A conntrackd restarted with its agent started empty and
 * asked its peers for their bindings (StartupResync); when the holder's agent restarted at the same
 * moment, nobody answered, and the node that took the IP next committed too little (chaos seed
 * 848038224: a stream through the IP unanswered for 14 s). removeRulesOnStop stops it.
 */
import type { ExecResult, Host, HostProcess } from '../host/host.js';
import { cidrContains, isIPv4, parseCidr4 } from '../../lib/net/addresses.js';
import { realClock, type Clock } from '../../lib/time/clock.js';

export const CTSYNC_TABLE = 'egresslab_ctsync';
export const CTSYNC_GROUP = '225.0.0.50';
export const CTSYNC_PORT = 3780;
/** A holder re-sends its whole cache this often (conntrackd -B): the longest a lost binding stays missing. */
export const CTSYNC_BULK_MS = 2000;
export const CTSYNC_RUN_DIR = '/run/egresslab/conntrackd';

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export interface ConntrackdConfigInput {
  nodeIP: string;
  uplink: string;
  runDir?: string;
  group?: string;
  port?: number;
}

export interface ConntrackdPaths {
  config: string;
  log: string;
  lock: string;
  socket: string;
  pid: string;
  /** nf_conntrack_events as it was before the first agent turned it off (restored when conntrackd stops for good) */
  eventsBeforeFile: string;
  /** the pid of a daemon whose startup dump was flushed (`-f internal`): the only one a next agent may adopt */
  flushed: string;
}

export function conntrackdPaths(runDir: string = CTSYNC_RUN_DIR): ConntrackdPaths {
  return {
    config: `${runDir}/conntrackd.conf`,
    log: `${runDir}/conntrackd.log`,
    lock: `${runDir}/conntrackd.lock`,
    socket: `${runDir}/conntrackd.ctl`,
    pid: `${runDir}/conntrackd.pid`,
    eventsBeforeFile: `${runDir}/events-before`,
    flushed: `${runDir}/conntrackd.flushed`,
  };
}

/** Refuses anything that would put conntrackd off the node segment or break its config syntax. */
export function conntrackdConfigIssues(i: ConntrackdConfigInput): string[] {
  const issues: string[] = [];
  if (!isIPv4(i.nodeIP)) issues.push(`nodeIP: must be an IPv4 address (got ${JSON.stringify(i.nodeIP)})`);
  if (!IFNAME.test(i.uplink)) issues.push(`uplink: must be an interface name (got ${JSON.stringify(i.uplink)})`);
  const g = i.group ?? CTSYNC_GROUP;
  const first = Number(g.split('.')[0]);
  if (!isIPv4(g) || first < 224 || first > 239) issues.push(`group: must be an IPv4 multicast address (got ${JSON.stringify(g)})`);
  const port = i.port ?? CTSYNC_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) issues.push(`port: must be 1-65535 (got ${JSON.stringify(port)})`);
  const dir = i.runDir ?? CTSYNC_RUN_DIR;
  if (!/^\/[A-Za-z0-9_./-]+$/.test(dir)) issues.push(`runDir: must be an absolute path of [A-Za-z0-9_./-] (got ${JSON.stringify(dir)})`);
  return issues;
}

/**
 * conntrackd.conf: NOTRACK over multicast on the uplink. NOTRACK, not FTFW: FTFW's message tracking
 * (sequence numbers, NACK/resend) assumes ONE peer per channel, and a gateway has N candidates on
 * one multicast group; NOTRACK sends every state change as it happens (lost datagrams are not
 * recovered, StartupResync refills a restarted node).
 */
export function renderConntrackdConfig(i: ConntrackdConfigInput): string {
  const issues = conntrackdConfigIssues(i);
  if (issues.length) throw new Error(`conntrackd config: ${issues.join('; ')}`);
  const p = conntrackdPaths(i.runDir);
  return `# egresslab agent: conntrack state sync between egress gateway candidates (docs/gateway.md)
Sync {
	Mode NOTRACK {
		DisableInternalCache no
		DisableExternalCache no
		StartupResync yes
	}
	Multicast {
		IPv4_address ${i.group ?? CTSYNC_GROUP}
		Group ${i.port ?? CTSYNC_PORT}
		IPv4_interface ${i.nodeIP}
		Interface ${i.uplink}
		SndSocketBuffer 1249280
		RcvSocketBuffer 1249280
		Checksum on
	}
	Options {
		TCPWindowTracking no
	}
}
General {
	Systemd no
	HashSize 8192
	HashLimit 65536
	LogFile ${p.log}
	Syslog no
	LockFile ${p.lock}
	UNIX {
		Path ${p.socket}
	}
	NetlinkBufferSize 2097152
	NetlinkBufferSizeMaxGrowth 8388608
	NetlinkOverrunResync off
	NetlinkEventsReliable off
	Filter From Userspace {
		Protocol Accept {
			TCP
		}
	}
}
`;
}

/** What conntrackd needs to hear about an SNAT binding: creation, state changes, destruction. */
export const CTSYNC_EVENTS = 'new,related,destroy,reply,assured,protoinfo';

/**
 * The kernel-side selection of what conntrackd replicates (see the file comment): with events off
 * by default, only new connections leaving with a floating IP held here get events. `enabled:
 * false` renders the removal of the table (nothing is left behind when the feature is off).
 */
export function renderCtSyncTable(ownedIPs: readonly string[], opts: { enabled: boolean; tableName?: string }): string {
  const table = opts.tableName ?? CTSYNC_TABLE;
  for (const ip of ownedIPs) if (!isIPv4(ip)) throw new Error(`invalid floating IP ${JSON.stringify(ip)}`);
  let out = `table ip ${table} {}\ndelete table ip ${table}\n`;
  if (!opts.enabled) return out;
  const owned = ownedIPs.length ? ` elements = { ${[...ownedIPs].sort().join(', ')} };` : '';
  out += `table ip ${table} {
	comment "egresslab: only SNAT bindings to floating IPs held here are replicated by conntrackd"
	set owned { type ipv4_addr;${owned} }
	chain postrouting {
		type filter hook postrouting priority srcnat + 20; policy accept;
		ct state new ip saddr @owned meta l4proto tcp ct event set ${CTSYNC_EVENTS} comment "egress_snat binding: replicated"
	}
}
`;
  return out;
}

/**
 * The floating IPs whose committed bindings a commit may have to delete: the gateway's current ones
 * and those it had before (most recently seen kept, at most `cap`). The external cache keeps a
 * peer's bindings of an IP after the IP leaves the gateway (until that peer's flows end); a commit
 * while the IP is out would otherwise put those bindings into this node's kernel (this node's own
 * pods' flows through that IP turned into local SNATs to it), and the guard drops those flows for
 * as long as they last, even after the IP is back and held elsewhere (chaos seed 848037977).
 */
export class FloatingIPHistory {
  private readonly seen = new Set<string>();
  /** `seen`: the list a previous agent left (floatingHistoryText), oldest first; what is not an IPv4 address is ignored */
  constructor(
    private readonly cap = 64,
    seen: readonly string[] = [],
  ) {
    for (const ip of seen.slice(-cap)) if (isIPv4(ip)) this.seen.add(ip);
  }

  /** Records the gateway's current IPs; returns them and the IPs seen before, newest last. */
  note(current: readonly string[]): string[] {
    for (const ip of current) {
      this.seen.delete(ip);
      this.seen.add(ip);
    }
    for (const ip of this.seen) {
      if (this.seen.size <= this.cap) break;
      if (!current.includes(ip)) this.seen.delete(ip);
    }
    return [...this.seen];
  }
}

/**
 * The file an agent keeps the history in, beside its status file: a restarted agent adopts the
 * conntrackd its predecessor left, external cache and all, and one that replaced it (or a rebooted
 * node) gets the peers' bindings again from their bulk sends, bindings of an IP that left the
 * gateway included, so the history must outlive the agent.
 */
export const FLOATING_HISTORY_FILE = 'gateway-floating-ips-seen';

/** The history file's text: one IP per line, oldest first. */
export function floatingHistoryText(ips: readonly string[]): string {
  return ips.map((ip) => `${ip}\n`).join('');
}

/** The IPs of a history file (null: none); lines that are not IPv4 addresses are dropped. */
export function parseFloatingHistory(text: string | null): string[] {
  return (text ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => isIPv4(l));
}

/** `conntrack -D` arguments removing committed bindings of floating IPs this node does not hold. */
export function foreignBindingPurgeArgs(floatingIPs: readonly string[], owned: readonly string[]): string[][] {
  return floatingIPs
    .filter((ip) => !owned.includes(ip))
    .sort()
    .map((ip) => ['-D', '-q', ip]);
}

/**
 * `conntrack` arguments deleting, before the commit of a take, the entries whose ORIGINAL
 * destination is a floating IP being taken: traffic addressed to the IP that this node tracked
 * while it did not hold it (hairpinned by a router's stale ARP entry; untracked since the gateway
 * ruleset's hairpin chain, but made before it, e.g. while the node booted). Such an entry's
 * original tuple is the reply tuple of the replicated binding of the same connection: left there,
 * it keeps the binding from being committed (chaos seed 848038198). No binding is matched: a
 * binding's original destination is the far end. "0 flow entries" is not an error.
 */
export function strayEntryPurgeArgs(taking: readonly string[]): string[][] {
  return [...taking].sort().map((ip) => ['-D', '-d', ip]);
}

/**
 * The commit step as one shell script: `conntrackd -c`, then the `conntrack -D` of each foreign
 * floating IP ("0 flow entries" is not an error), then the unbind list (render.ts misboundBindings).
 * Exit 3 if the commit failed. Each list of deletions (the flush before the commit, the purge and the
 * unbind after it) is ONE `conntrack -R -` process reading them as lines (conntrack-tools 1.4.7
 * batch mode: one process instead of one per IP or pair on the take's critical path); a conntrack
 * without it (exit not 0) runs them one by one. Every argument is validated (paths by
 * conntrackdConfigIssues, IPs by the callers); the batch lines are checked again here (letters,
 * digits, `.`, `-`, `/`, `:`), the commands quoted.
 */
export function commitScript(conntrackd: string, config: string, conntrack: string, purge: readonly string[][], opts: CommitSteps = {}): string {
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  const batch = (list: readonly string[][]): string[] => {
    if (!list.length) return [];
    for (const args of list)
      for (const a of args) if (!/^[-A-Za-z0-9./:]+$/.test(a)) throw new Error(`conntrack batch line: argument ${JSON.stringify(a)} is not allowed`);
    const oneByOne = list.map((args) => `${q(conntrack)} ${args.map(q).join(' ')} >/dev/null 2>&1`).join('; ');
    return [`${q(conntrack)} -R - >/dev/null 2>&1 <<'EOF' || { ${oneByOne}; }`, ...list.map((args) => args.join(' ')), 'EOF'];
  };
  const lines: string[] = [];
  // entries to delete right before the commit (the old entries of the flows whose bindings it
  // brings back): no process spawn between the two
  lines.push(...batch(opts.flush ?? []));
  lines.push(`${q(conntrackd)} -C ${q(config)} -c || exit 3`);
  // this node's own bindings kept from when it released the IP (keptBindingLines), AFTER the
  // replicated ones: an entry already there (same flow, or the same IP:port to the same far end)
  // wins over the kept line, which is older; a failed load is reported (exit 5), not fatal
  if (opts.load) lines.push(`${q(conntrack)} -R ${q(opts.load)} >/dev/null 2>&1 || kept=failed`, `rm -f ${q(opts.load)}`);
  // bindings of IPs held elsewhere, then the ones to a held IP other than their flows' (after the
  // load too: a kept line is of its pair's own IP)
  lines.push(...batch([...purge, ...(opts.unbind ?? [])]));
  if (opts.load) lines.push('[ "$kept" = failed ] && exit 5');
  lines.push('exit 0');
  return lines.join('\n');
}

/** Optional steps of one commit's shell (commitScript). */
export interface CommitSteps {
  /** `conntrack` argument lists run just before the commit */
  flush?: readonly string[][];
  /** `conntrack -D` argument lists run after the commit, the load and the purge (render.ts misboundBindings) */
  unbind?: readonly string[][];
  /** a file of `conntrack -o save` lines loaded (`conntrack -R`) after the commit, so that a replicated binding (fresher) wins over a loaded one; removed after */
  load?: string | null;
}

/**
 * What one commit (ConntrackSync.commit) does besides the shell's steps: nft commands applied
 * right before it (best effort) and right after it (their failure is reported: postFailed). They go
 * through the host's nft apply session, in that order around the shell, with no nft process of
 * their own (the takeover path used to start two).
 */
export interface CommitNft {
  /** nft commands applied before anything else */
  pre?: string | null;
  /** nft commands applied after the commit and the purge (not when the commit failed) */
  post?: string | null;
}

/** `conntrack` arguments listing every TCP entry in the save format (one dump for all the IPs released; split by keptBindingLines). */
export const BINDING_SAVE_ARGS: readonly string[] = ['-L', '-p', 'tcp', '-o', 'save'];

/** Own bindings kept from a release for the next take of the same IP (keptBindings). */
export interface KeptBindings {
  /** `conntrack -o save` lines (`-A -t <seconds left> ... -n <floating IP> ...`) */
  lines: string[];
  /** when they were listed (ms, the module's clock) */
  at: number;
}

/** At most this many bindings are kept per floating IP (a line is ~200 bytes). */
export const KEPT_BINDINGS_MAX = 65_536;

/**
 * The lines of `conntrack -L ... -o save` output that are SNAT bindings of one of `sources` to
 * `ip`. A holder that releases an IP flushes its own pods' entries (their next packets must be
 * routed to the new holder un-NATed); conntrackd replicated those bindings to its PEERS only, and a
 * peer that commits them makes no event, so if the IP comes back, nobody has them: the far end's
 * segments of a quiet connection then find no entry and never reach the pod (chaos seed
 * 1419845312, replies-reach-pod). The same holds for the bindings it made of OTHER nodes' pods'
 * connections (the pairs it forwarded): they stay in its kernel after the release, but the commit
 * of its next take of another IP purges them, and its own bindings are in no cache of its own
 * (session 39: 192.168.1.100 out of the gateway, its holder took .103 meanwhile and then .100
 * back; a stream of node-2's pod was never answered again: scenarios/regressions/
 * removed-ip-retaken-after-another-take). The agent keeps both (sources: its own pods of the pairs
 * leaving local treatment, and the other nodes' pods whose pairs it forwarded to that IP:
 * KeptBindings) and loads them at the next take, after the replicated ones.
 */
export function keptBindingLines(saveOutput: string, ip: string, sources: ReadonlySet<string>): string[] {
  return keptBindingsByIP(saveOutput, new Map([[ip, sources]])).get(ip) ?? [];
}

/** The value after `flag` in a `conntrack -o save` line split into words, or undefined. */
function saveArg(words: readonly string[], flag: string): string | undefined {
  const i = words.indexOf(flag);
  return i >= 0 ? words[i + 1] : undefined;
}

/** Whole seconds since `at` (ms), never negative (a clock that went back counts as no time). */
function secondsSince(at: number, nowMs: number): number {
  return Math.max(0, Math.ceil((nowMs - at) / 1000));
}

/** A kept line (split into words) with its timeout (`-t`) less `elapsed` seconds; null when it has run out (or has none). */
function aged(words: readonly string[], elapsed: number): string | null {
  const i = words.indexOf('-t');
  const left = i >= 0 ? Number(words[i + 1]) - elapsed : Number.NaN;
  if (!(left > 0)) return null;
  const out = [...words];
  out[i + 1] = String(left);
  return out.join(' ');
}

/** keptBindingLines for several IPs from one listing: IP -> its lines (every IP asked for is present). */
export function keptBindingsByIP(saveOutput: string, wanted: ReadonlyMap<string, ReadonlySet<string>>): Map<string, string[]> {
  const out = new Map([...wanted.keys()].map((ip) => [ip, [] as string[]]));
  for (const line of saveOutput.split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t[0] !== '-A') continue;
    const arg = (flag: string) => saveArg(t, flag);
    const ip = arg('-n') ?? '';
    const lines = out.get(ip);
    if (!lines || !wanted.get(ip)!.has(arg('-s') ?? '') || arg('-p') !== 'tcp') continue;
    if (!/^\d+$/.test(arg('-t') ?? '') || lines.length >= KEPT_BINDINGS_MAX) continue;
    lines.push(t.join(' '));
  }
  return out;
}

/**
 * Kept bindings of `ip` as they may be loaded `nowMs` when the node takes `ip` again: only those
 * of a (source, destination) pair that the take SNATs here to that same IP — an own pod's pair by
 * `treatments` (what the entries stand for once the take is committed: render.ts treatmentsAfter),
 * another node's pod's pair by `forwarded` (render.ts forwardedSnats of the take's plan) — a pod
 * relabelled out of the policy, deleted (its IP perhaps reused), or whose policy now uses another
 * IP gets nothing back — each with its timeout (`-t`, seconds left when listed) less the time
 * since; lines whose timeout has run out are dropped (the kernel would have expired the entry by now).
 */
export function keptBindingsAt(
  k: KeptBindings,
  ip: string,
  nowMs: number,
  treatments: ReadonlyMap<string, string>,
  forwarded: ReadonlyMap<string, string> = new Map(),
): string[] {
  const local = [...[...treatments].filter(([, t]) => t.endsWith(`:local@${ip}`)), ...[...forwarded].filter(([, t]) => t.endsWith(`@${ip}`))].flatMap(
    ([pair]) => {
      const [src, dst] = pair.split('>') as [string, string];
      const c = parseCidr4(dst, false);
      return c.ok ? [{ src, cidr: c.value }] : [];
    },
  );
  const elapsed = secondsSince(k.at, nowMs);
  const out: string[] = [];
  for (const line of k.lines) {
    const t = line.split(' ');
    const src = saveArg(t, '-s');
    const dst = saveArg(t, '-d') ?? '';
    if (saveArg(t, '-n') !== ip || !isIPv4(dst) || !local.some((l) => l.src === src && cidrContains(l.cidr, dst))) continue;
    const a = aged(t, elapsed);
    if (a !== null) out.push(a);
  }
  return out;
}

/** A kept line's original tuple (protocol, addresses, ports): two lines of the same connection share it. */
function keptTuple(line: string): string {
  const t = line.split(' ');
  return ['-p', '-s', '--sport', '-d', '--dport'].map((f) => saveArg(t, f) ?? '').join(' ');
}

/**
 * What is kept of an IP after a new listing at `nowMs`: the lines just listed, then those kept
 * before (their timeouts less the time since, the expired ones dropped) of the connections the new
 * listing does not have. A release whose apply failed is retried: the retry lists only the sources
 * it still sees as released (the failed attempt's own pods' pairs are then in an unknown state and
 * already flushed), so replacing the first attempt's lines would lose its own pods' bindings.
 * At most KEPT_BINDINGS_MAX lines, the listed ones first.
 */
export function mergeKept(prev: KeptBindings | undefined, listed: readonly string[], nowMs: number): KeptBindings {
  const lines = [...listed];
  if (prev) {
    const have = new Set(listed.map(keptTuple));
    const elapsed = secondsSince(prev.at, nowMs);
    for (const line of prev.lines) {
      if (lines.length >= KEPT_BINDINGS_MAX) break;
      if (have.has(keptTuple(line))) continue;
      const a = aged(line.split(' '), elapsed);
      if (a !== null) lines.push(a);
    }
  }
  return { lines: lines.slice(0, KEPT_BINDINGS_MAX), at: nowMs };
}

/** "Committed N new entries" from conntrackd's log (the last commit), or null. */
export function committedFromLog(text: string): number | null {
  const all = [...text.matchAll(/Committed (\d+) new entr/g)];
  return all.length ? Number(all[all.length - 1]![1]) : null;
}

/** Counts the entries of `conntrackd -e` / `-i` output (one line per entry). */
export function countCacheEntries(text: string): number {
  return text.split('\n').filter((l) => /^\s*(tcp|udp|icmp|sctp|dccp|unknown)\s+\d+\s/.test(l)).length;
}

/** The last lines of conntrackd's log that say something (errors first in mind when it died). */
export function logTail(text: string, n = 5): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n);
}

// ---------------------------------------------------------------------------------------------
// I/O

const EVENTS_SYSCTL = 'net/netfilter/nf_conntrack_events';

/** start() gave up because the agent is stopping (ConntrackSyncOptions.signal): not a failure of conntrackd. */
export class ConntrackStartAbandoned extends Error {
  constructor() {
    super('the agent is stopping: conntrackd start abandoned');
    this.name = 'ConntrackStartAbandoned';
  }
}

export interface ConntrackSyncOptions extends ConntrackdConfigInput {
  log: (m: string) => void;
  /** the node's kernel: conntrackd, conntrack, nft, sysctl, files (agent/host/host.ts) */
  host: Host;
  conntrackdPath?: string;
  conntrackPath?: string;
  /** restart delay after an unexpected exit (ms) */
  restartDelayMs?: number;
  /** how long start() waits for the daemon's control socket */
  readyTimeoutMs?: number;
  /**
   * The agent's stop (NodeModuleContext.stopping): once it is aborted, start() spawns nothing and
   * gives up its wait for the control socket at its next try (a try already under way may take its
   * 2 s), throwing ConntrackStartAbandoned, instead of holding a SIGTERM up for as long as
   * readyTimeoutMs; the caller then stops the daemon it spawned.
   */
  signal?: AbortSignal;
  clock?: Pick<Clock, 'now'>;
}

export interface ConntrackSyncStatus {
  enabled: true;
  mode: 'NOTRACK';
  transport: string;
  running: boolean;
  pid: number | null;
  /** the running daemon was left by the previous agent and adopted (not spawned by this agent) */
  adopted: boolean;
  starts: number;
  /** daemons adopted from a previous agent (ConntrackSync.start) */
  adoptions: number;
  unexpectedExits: number;
  commits: number;
  lastCommitAt: string | null;
  lastCommitMs: number | null;
  /** entries the last commit created (conntrackd's log) */
  lastCommitEntries: number | null;
  purges: number;
  /** `conntrack -D` of committed bindings to a held IP other than their pair's (CommitSteps.unbind) */
  unbinds: number;
  /** periodic bulk sends of the holder's cache (conntrackd -B): recover lost NOTRACK datagrams */
  bulkSends: number;
  /** internal cache emptied before a release (forgetOwn): its deletions were not sent to the peers */
  forgets: number;
  lastError: { at: string; message: string } | null;
  config: string;
  log: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How often an adopted conntrackd (not this agent's child: no exit event) is checked to be still there. */
export const CTSYNC_ADOPTED_CHECK_MS = 250;

/** The pid in `paths.pid` when that process is a conntrackd run with `paths.config`; null otherwise. */
function leftoverPid(host: Host, paths: ConntrackdPaths): number | null {
  const pid = Number((host.readFile(paths.pid) ?? '').trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return isOurs(host, paths, pid) ? pid : null;
}

function isOurs(host: Host, paths: ConntrackdPaths, pid: number): boolean {
  const cmd = host.cmdline(pid);
  return !!cmd?.includes('conntrackd') && cmd.includes(paths.config);
}

/** nf_conntrack_events as the first agent found it (the events-before file), or null. */
function eventsBeforeKept(host: Host, paths: ConntrackdPaths): string | null {
  const v = (host.readFile(paths.eventsBeforeFile) ?? '').trim();
  return /^\d+$/.test(v) ? v : null;
}

/** SIGKILLs a leftover conntrackd (when the pid file and its command line name one) and removes its run files. */
function killLeftover(host: Host, paths: ConntrackdPaths, log: (m: string) => void, why: string): void {
  const pid = leftoverPid(host, paths);
  if (pid !== null) {
    log(`${why} (pid ${pid})`);
    host.killPid(pid, 'SIGKILL');
  }
  for (const f of [paths.pid, paths.lock, paths.socket, paths.flushed]) host.remove(f);
}

function logTailText(host: Host, paths: ConntrackdPaths): string {
  return logTail(host.readFile(paths.log) ?? '', 3).join(' | ') || '(empty)';
}

/**
 * Stops a conntrackd a previous agent left running (ConntrackSync.stop with `leave`) when this agent
 * does not run conntrack sync, and puts nf_conntrack_events back as it was before the first agent
 * turned it off. Nothing to do without a pid file naming a conntrackd of `runDir`'s config.
 */
export async function stopLeftoverConntrackd(host: Host, log: (m: string) => void, runDir: string = CTSYNC_RUN_DIR): Promise<void> {
  const paths = conntrackdPaths(runDir);
  killLeftover(host, paths, log, 'conntrack sync is off: stopping the conntrackd a previous agent left running');
  const before = eventsBeforeKept(host, paths);
  if (before !== null) await host.sysctl(EVENTS_SYSCTL, before).catch(() => undefined);
  host.remove(paths.eventsBeforeFile);
}

export class ConntrackSync {
  private readonly host: Host;
  private readonly paths: ConntrackdPaths;
  private child: HostProcess | null = null;
  /** the pid of a conntrackd left by the previous agent and adopted by start() (no child of ours) */
  private adopted: number | null = null;
  private adoptedWatch: NodeJS.Timeout | null = null;
  private exited: Promise<void> | null = null;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private ready = false;
  private eventsBefore: string | null = null;
  private readonly st = {
    starts: 0,
    adoptions: 0,
    unexpectedExits: 0,
    commits: 0,
    lastCommitAt: null as string | null,
    lastCommitMs: null as number | null,
    lastCommitEntries: null as number | null,
    purges: 0,
    unbinds: 0,
    bulkSends: 0,
    forgets: 0,
    lastError: null as { at: string; message: string } | null,
  };

  constructor(private readonly o: ConntrackSyncOptions) {
    this.host = o.host;
    this.paths = conntrackdPaths(o.runDir);
  }

  private now(): number {
    return (this.o.clock ?? realClock).now();
  }

  private fail(message: string): void {
    this.st.lastError = { at: new Date(this.now()).toISOString(), message };
    this.o.log(`conntrack sync: ${message}`);
  }

  private ctl(args: string[], timeoutMs = 5000): Promise<ExecResult> {
    return this.host.exec(this.o.conntrackdPath ?? 'conntrackd', ['-C', this.paths.config, ...args], { timeoutMs });
  }

  /** Daemon up and answering: spawned by this agent, or adopted from the previous one. */
  private get alive(): boolean {
    return this.ready && (this.child !== null || this.adopted !== null);
  }

  /** The pid of the daemon this agent supervises (spawned or adopted), or null. */
  private get daemonPid(): number | null {
    return this.child?.pid ?? this.adopted;
  }

  /** A conntrackd left by a previous agent that cannot be adopted: ours by pid file AND command line. */
  private reapLeftover(): void {
    killLeftover(this.host, this.paths, this.o.log, 'conntrack sync: stopping the conntrackd left by a previous agent');
  }

  /** After an unexpected exit: a new daemon after the back-off (restartDelayMs). */
  private relaunchLater(): void {
    this.restartTimer = setTimeout(() => void this.launch().catch((e: unknown) => this.fail(String(e))), this.o.restartDelayMs ?? 1000);
    this.restartTimer.unref?.();
  }

  /**
   * Adopts the conntrackd a previous agent left running (stop with `leave`, or the agent crashed)
   * when it is ours (pid file and command line), its startup dump was flushed (the `flushed` marker
   * names its pid: a daemon whose agent died before the flush holds un-NATed entries of the whole
   * kernel table), it runs exactly the config this agent would write, and it answers on its control
   * socket. Its internal and external caches are kept. False otherwise, and start() replaces it.
   */
  private async adopt(config: string): Promise<boolean> {
    const pid = leftoverPid(this.host, this.paths);
    if (pid === null) return false;
    const why =
      (this.host.readFile(this.paths.flushed) ?? '').trim() !== String(pid)
        ? 'was never flushed (its agent died while starting it)'
        : this.host.readFile(this.paths.config) !== config
          ? 'has another config'
          : null;
    if (why) {
      this.o.log(`conntrack sync: the conntrackd left running (pid ${pid}) ${why}: replacing it`);
      return false;
    }
    const r = await this.ctl(['-s', 'runtime'], 2000);
    this.abandonIfStopping();
    if (r.code !== 0) {
      this.o.log(`conntrack sync: the conntrackd left running (pid ${pid}) does not answer on ${this.paths.socket}: replacing it`);
      return false;
    }
    this.adopted = pid;
    this.ready = true;
    this.st.adoptions++;
    this.adoptedWatch = setInterval(() => {
      if (this.adopted !== pid || isOurs(this.host, this.paths, pid)) return;
      this.dropAdopted();
      if (this.stopped) return;
      this.st.unexpectedExits++;
      this.fail(`conntrackd (pid ${pid}, adopted) exited; restarting; its log ends with: ${logTailText(this.host, this.paths)}`);
      this.relaunchLater();
    }, CTSYNC_ADOPTED_CHECK_MS);
    this.adoptedWatch.unref?.();
    this.o.log(`conntrack sync: adopted the conntrackd the previous agent left running (pid ${pid}): its caches are kept`);
    return true;
  }

  private dropAdopted(): void {
    if (this.adoptedWatch) clearInterval(this.adoptedWatch);
    this.adoptedWatch = null;
    this.adopted = null;
    this.ready = false;
  }

  async start(): Promise<void> {
    this.abandonIfStopping();
    this.stopped = false;
    const config = renderConntrackdConfig(this.o);
    // events off by default: only the egresslab_ctsync rule turns them on (SNAT bindings); what they
    // were before the FIRST agent turned them off is kept in a file (written before the change, so a
    // crash in between cannot lose it), for the stop that ends sync
    const prev = await this.host.readSysctl(EVENTS_SYSCTL);
    if (prev === null) throw new Error(`cannot read /proc/sys/${EVENTS_SYSCTL} (no conntrack events in this kernel?)`);
    this.eventsBefore = eventsBeforeKept(this.host, this.paths);
    if (prev !== '0') {
      if (this.eventsBefore === null) {
        this.host.writeFile(this.paths.eventsBeforeFile, `${prev}\n`);
        this.eventsBefore = prev;
      }
      await this.host.sysctl(EVENTS_SYSCTL, '0');
    }
    if (await this.adopt(config)) return;
    this.reapLeftover();
    this.host.writeFile(this.paths.config, config);
    await this.launch();
  }

  /** Throws ConntrackStartAbandoned once the agent is stopping (ConntrackSyncOptions.signal). */
  private abandonIfStopping(): void {
    if (this.o.signal?.aborted) throw new ConntrackStartAbandoned();
  }

  private async launch(): Promise<void> {
    if (this.stopped) return;
    this.abandonIfStopping();
    this.ready = false;
    for (const f of [this.paths.lock, this.paths.socket, this.paths.flushed]) this.host.remove(f);
    let resolveExit!: () => void;
    this.exited = new Promise((r) => (resolveExit = r));
    const child = this.host.spawn(this.o.conntrackdPath ?? 'conntrackd', ['-C', this.paths.config], (code, signal) => {
      resolveExit();
      if (this.child !== child) return;
      this.child = null;
      this.ready = false;
      if (this.stopped) return;
      this.st.unexpectedExits++;
      this.fail(`conntrackd exited (${signal ?? `code ${code}`}); restarting; its log ends with: ${logTailText(this.host, this.paths)}`);
      this.relaunchLater();
    });
    this.child = child;
    this.st.starts++;
    if (child.pid) this.host.writeFile(this.paths.pid, `${child.pid}\n`);
    // ready when the control socket answers; then drop the startup dump of the kernel table (it
    // bypasses the event selection and would hold the un-NATed entries of source nodes)
    const deadline = this.now() + (this.o.readyTimeoutMs ?? 5000);
    for (;;) {
      if (this.child !== child) throw new Error(`conntrackd exited while starting: ${logTail(this.host.readFile(this.paths.log) ?? '', 3).join(' | ')}`);
      this.abandonIfStopping();
      const r = await this.ctl(['-s', 'runtime'], 2000);
      if (r.code === 0) break;
      if (this.now() > deadline)
        throw new Error(`conntrackd did not answer on ${this.paths.socket} within ${this.o.readyTimeoutMs ?? 5000} ms: ${(r.stderr || r.stdout).trim()}`);
      await sleep(50);
    }
    this.abandonIfStopping();
    const f = await this.ctl(['-f', 'internal']);
    if (f.code !== 0) throw new Error(`conntrackd -f internal failed: ${(f.stderr || f.stdout).trim()}`);
    if (child.pid) this.host.writeFile(this.paths.flushed, `${child.pid}\n`);
    this.ready = true;
    this.o.log(
      `conntrack sync: conntrackd running (pid ${child.pid}, NOTRACK, multicast ${this.o.group ?? CTSYNC_GROUP}:${this.o.port ?? CTSYNC_PORT} on ${this.o.uplink} from ${this.o.nodeIP})`,
    );
  }

  /**
   * Commits the external cache (the bindings other holders replicated) into the kernel, then
   * deletes the bindings of the floating IPs of `floatingIPs` not in `spared` (see the file
   * comment; the caller spares the IPs it will hold, and the ones it holds until its next ruleset),
   * in ONE shell: the commit replaces this node's own entries of its pods' flows through other
   * floating IPs, and every process spawn between the two steps (hundreds of ms on a loaded
   * machine) would be a window in which those flows are SNATed here and dropped by the guard.
   * Called when this node is about to take floating IPs, and again right after its final ruleset
   * (with `steps.flush` and `steps.post`: render.ts renderTakeoverWindow). Never throws: a failed
   * commit only loses the benefit (flows are then picked up loosely, as without sync); nothing of
   * `steps` is known to have run then, and `postFailed` says only the post step failed.
   */
  async commit(
    floatingIPs: readonly string[],
    spared: readonly string[],
    steps: Omit<CommitSteps, 'load'> & CommitNft & { load?: readonly string[] } = {},
  ): Promise<{ ok: boolean; ms: number; entries: number | null; postFailed?: boolean; loadFailed?: boolean }> {
    const t0 = this.now();
    if (!this.alive) {
      this.fail('commit skipped: conntrackd is not running');
      return { ok: false, ms: 0, entries: null };
    }
    const purge = foreignBindingPurgeArgs(floatingIPs, spared);
    const { load, pre, post, ...rest } = steps;
    // rules that must hold from the commit on (render.ts renderStrayReplyFence); best effort: the
    // final ruleset, applied right after, has them too
    if (pre) await this.host.nftApply(pre).catch(() => undefined);
    const loadFile = this.writeKept(load ?? []);
    const r = await this.host.exec('sh', [
      '-c',
      commitScript(this.o.conntrackdPath ?? 'conntrackd', this.paths.config, this.o.conntrackPath ?? 'conntrack', purge, { ...rest, load: loadFile }),
    ]);
    const loadFailed = r.code === 5;
    // rules that must go once the bindings are in (render.ts renderTakeoverWindowEnd): a failure
    // tells the caller to remove them itself
    const postFailed =
      !!post &&
      (r.code === 0 || loadFailed) &&
      !(await this.host.nftApply(post).then(
        () => true,
        () => false,
      ));
    const ms = this.now() - t0;
    if (loadFailed) this.fail('loading the kept bindings failed (conntrack -R)');
    if (r.code !== 0 && !loadFailed) {
      this.fail(`commit failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
      return { ok: false, ms, entries: null };
    }
    const entries = committedFromLog(this.host.readFile(this.paths.log) ?? '');
    this.st.commits++;
    this.st.purges += purge.length;
    this.st.unbinds += rest.unbind?.length ?? 0;
    this.st.lastCommitAt = new Date(this.now()).toISOString();
    this.st.lastCommitMs = ms;
    this.st.lastCommitEntries = entries;
    return { ok: true, ms, entries, ...(postFailed ? { postFailed } : {}), ...(loadFailed ? { loadFailed } : {}) };
  }

  /** Writes kept lines to the run directory for `conntrack -R`; the file, or null (none, or not written: reported). */
  private writeKept(lines: readonly string[]): string | null {
    if (!lines.length) return null;
    const file = `${this.o.runDir ?? CTSYNC_RUN_DIR}/kept-bindings`;
    try {
      this.host.writeFile(file, `${lines.join('\n')}\n`);
      return file;
    } catch (e) {
      this.fail(`kept bindings not written: ${String(e)}`);
      return null;
    }
  }

  /**
   * This node's TCP bindings of the given sources to each IP, listed (one dump) before a release
   * flushes them (keptBindingsByIP). Null when the listing failed (reported): nothing is kept.
   * Needs no running conntrackd.
   */
  async keep(wanted: ReadonlyMap<string, ReadonlySet<string>>): Promise<Map<string, string[]> | null> {
    const r = await this.host.exec(this.o.conntrackPath ?? 'conntrack', [...BINDING_SAVE_ARGS], { timeoutMs: 2000 });
    if (r.code !== 0) {
      this.fail(`listing this node's bindings failed (exit ${r.code}): ${r.stderr.trim()}`);
      return null;
    }
    return keptBindingsByIP(r.stdout, wanted);
  }

  /** Loads kept lines without a commit (`conntrack -R`: conntrackd need not run); false when it failed (reported). */
  async loadKept(lines: readonly string[]): Promise<boolean> {
    const file = this.writeKept(lines);
    if (!file) return false;
    const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
    const r = await this.host.exec('sh', ['-c', `${q(this.o.conntrackPath ?? 'conntrack')} -R ${q(file)} >/dev/null 2>&1; c=$?; rm -f ${q(file)}; exit $c`]);
    if (r.code !== 0) this.fail(`loading the kept bindings failed (conntrack -R, exit ${r.code})`);
    return r.code === 0;
  }

  /**
   * Empties this node's internal cache (`conntrackd -f internal`, which sends nothing) before a
   * release deletes bindings this node made as a holder: conntrackd sends a peer the deletion of an
   * entry in its internal cache, and the peer's external cache loses the binding, which a new
   * holder may still have to commit (conntrackd never sends anything about an entry it does not
   * have). The bindings of IPs this node keeps holding are forgotten too: the peers keep their
   * copies (a NOTRACK external cache entry stays until a deletion reaches it), the bulk sends no
   * longer refresh them, and their connections' next events put them back. Never throws; false
   * when it failed (reported: the deletions then reach the peers, as before).
   */
  async forgetOwn(releasing: readonly string[]): Promise<boolean> {
    if (!this.alive || this.stopped) return false;
    const r = await this.ctl(['-f', 'internal'], 2000);
    if (r.code !== 0) {
      this.fail(`forgetting the internal cache before releasing ${releasing.join(', ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
      return false;
    }
    this.st.forgets++;
    return true;
  }

  /**
   * Re-sends every binding of this node's internal cache to the other candidates (`conntrackd -B`).
   * NOTRACK never recovers a lost datagram, and an established flow produces no further events, so a
   * binding lost once stayed lost: under load, 2 of 20 connections were reset after a failover. The
   * holder calls this every CTSYNC_BULK_MS, which bounds how long a lost binding stays missing.
   */
  async bulkSend(): Promise<boolean> {
    if (!this.alive || this.stopped) return false;
    const r = await this.host.exec(this.o.conntrackdPath ?? 'conntrackd', ['-C', this.paths.config, '-B'], { timeoutMs: 2000 });
    if (r.code !== 0) {
      this.fail(`bulk send failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
      return false;
    }
    this.st.bulkSends++;
    return true;
  }

  /**
   * Stops supervising the daemon. With `leave` (the agent's clean stop, the datapath left as
   * programmed) a daemon that is up and answering is left running for the next agent to adopt, with
   * its pid file, its socket and nf_conntrack_events as they are; otherwise (removeRulesOnStop, a
   * failed start) it is stopped and nf_conntrack_events put back. Returns the pid of the daemon left
   * running, or null.
   */
  async stop(opts: { leave?: boolean } = {}): Promise<number | null> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const pid = this.daemonPid;
    if (opts.leave && this.alive && pid) {
      this.child = null;
      this.dropAdopted();
      this.o.log(`conntrack sync: conntrackd left running for the next agent (pid ${pid}): its caches outlive this agent`);
      return pid;
    }
    const child = this.child;
    const adopted = this.adopted;
    this.dropAdopted();
    if (child) {
      child.kill('SIGTERM');
      const done = await Promise.race([this.exited!.then(() => true), sleep(2000).then(() => false)]);
      if (!done) child.kill('SIGKILL');
      this.child = null;
    } else if (adopted !== null && isOurs(this.host, this.paths, adopted)) {
      this.host.killPid(adopted, 'SIGTERM');
      // it is not our child (no exit event): its command line says when it is gone (100 x 20 ms)
      for (let i = 0; i < 100 && isOurs(this.host, this.paths, adopted); i++) await sleep(20);
      if (isOurs(this.host, this.paths, adopted)) this.host.killPid(adopted, 'SIGKILL');
    } else if (adopted === null) {
      await this.restoreEvents();
      return null;
    }
    this.ready = false;
    for (const f of [this.paths.pid, this.paths.lock, this.paths.socket, this.paths.flushed]) this.host.remove(f);
    await this.restoreEvents();
    return null;
  }

  /**
   * nf_conntrack_events back as the first agent found it, once no conntrackd of ours runs: while a
   * daemon left by a previous agent still runs (a start abandoned before it could adopt or replace
   * it), events stay off and the file stays, or it would learn every connection of the node.
   */
  private async restoreEvents(): Promise<void> {
    if (this.eventsBefore === null) return;
    if (leftoverPid(this.host, this.paths) !== null) return;
    try {
      await this.host.sysctl(EVENTS_SYSCTL, this.eventsBefore);
    } catch {
      /* best effort */
    }
    this.eventsBefore = null;
    this.host.remove(this.paths.eventsBeforeFile);
  }

  status(): ConntrackSyncStatus {
    return {
      enabled: true,
      mode: 'NOTRACK',
      transport: `multicast ${this.o.group ?? CTSYNC_GROUP}:${this.o.port ?? CTSYNC_PORT} on ${this.o.uplink}`,
      running: this.alive,
      pid: this.daemonPid,
      adopted: this.adopted !== null,
      ...this.st,
      config: this.paths.config,
      log: this.paths.log,
    };
  }
}
