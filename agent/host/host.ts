/**
 * The agent's one way to the kernel: nft, ip, arping, conntrack, sysctl, processes (conntrackd) and
 * files. The masquerade module, the gateway module and conntrack sync all take a `Host`;
 * agent/host/exec-host.ts is the real one (execFile, no shell), agent/host/fake-host.ts the one
 * recording fake the unit tests use.
 *
 * Error convention: `exec` never rejects (exit code -1 when the command could not run or timed
 * out); every other method rejects with a HostCommandError naming the command and its stderr.
 */

/** What a command did: its exit code (-1: could not run or timed out) and its output. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A process started by `spawn` (conntrackd in the foreground). */
export interface HostProcess {
  readonly pid: number | undefined;
  kill(sig: NodeJS.Signals): void;
}

/** One `ip -batch` operation: routing and addresses as data; the command text is made at the edge (ipBatchLine). */
export type IpOp =
  | { op: 'route-replace'; table: number; via: string; dev: string }
  | { op: 'route-throw'; table: number; cidr: string }
  | { op: 'route-blackhole'; table: number }
  | { op: 'route-flush'; table: number }
  | { op: 'rule-add' | 'rule-del'; rule: IpRule }
  | { op: 'address-add' | 'address-del'; cidr: string; dev: string };

/** A policy-routing rule: `pref P [from CIDR] [iif DEV] fwmark M/MASK table T`. */
export interface IpRule {
  pref: number;
  fwmark: number;
  mask: number;
  table: number;
  /** `iif NAME` (the forward fence) */
  iif?: string;
  /** `from CIDR` (the forward fence) */
  from?: string;
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** `pref ... table T` of a rule, as `ip rule` takes it. */
export function ipRuleArgs(r: IpRule): string {
  return `pref ${r.pref}${r.from ? ` from ${r.from}` : ''}${r.iif ? ` iif ${r.iif}` : ''} fwmark ${hex(r.fwmark)}/${hex(r.mask)} table ${r.table}`;
}

/** The `ip -batch` line of one operation. */
export function ipBatchLine(o: IpOp): string {
  switch (o.op) {
    case 'route-replace':
      return `route replace default via ${o.via} dev ${o.dev} table ${o.table}`;
    case 'route-throw':
      return `route replace throw ${o.cidr} table ${o.table}`;
    case 'route-blackhole':
      return `route replace blackhole default table ${o.table}`;
    case 'route-flush':
      return `route flush table ${o.table}`;
    case 'rule-add':
      return `rule add ${ipRuleArgs(o.rule)}`;
    case 'rule-del':
      return `rule del ${ipRuleArgs(o.rule)}`;
    case 'address-add':
      return `address add ${o.cidr} dev ${o.dev}`;
    case 'address-del':
      return `address del ${o.cidr} dev ${o.dev}`;
  }
}

/** How `nftList` lists a table. */
export interface NftListOptions {
  /** `-j`: JSON instead of nft syntax */
  json?: boolean;
  /** `-t` (terse): sets without their elements */
  terse?: boolean;
}

export interface Host {
  /** `nft -f -`: one transaction */
  nftApply(ruleset: string): Promise<void>;
  /**
   * `nft -s [-j] [-t] list table <family> <name>` (stateless: no counters); null when the table does
   * not exist. Note: nft 1.0.6 reads a set's elements from the kernel even for `-t` and merely does
   * not print them, so a terse listing of a big set is cheaper to print and parse, not to fetch.
   */
  nftList(family: string, name: string, opts?: NftListOptions): Promise<string | null>;
  /**
   * Whether `nft list table <family> <name>` finds the table: false when nft says there is none,
   * rejects when nft itself fails (missing, timed out, refused): "no table" is never a guess.
   */
  nftTableExists(family: string, name: string): Promise<boolean>;
  /**
   * One single-line nft command for a frequent, idempotent refresh (the ARP fence's @alive set),
   * through one long-lived `nft -i` session instead of a process per call. Errors are reported as
   * they appear (the session answers nothing on success).
   */
  nftLine(line: string): Promise<void>;
  /** `ip -j <args>` -> stdout */
  ipJson(args: string[]): Promise<string>;
  /** `ip -force -batch -` (every operation is tried; rejects if any failed; nothing to do: no process) */
  ipBatch(ops: readonly IpOp[]): Promise<void>;
  /** one gratuitous ARP for `ip` on `dev` */
  arping(dev: string, ip: string): Promise<void>;
  /**
   * Address conflict detection (an RFC 5227 probe): one ARP request for `ip` on `dev` from 0.0.0.0;
   * the MAC (lower case) of the first host that answers within `waitMs` of the request leaving,
   * or null when nobody did. Rejects when the probe could not be sent.
   */
  arpProbe(dev: string, ip: string, waitMs: number): Promise<string | null>;
  /** `conntrack <args>` (exit 1 "0 flow entries" is not an error) */
  conntrack(args: string[]): Promise<void>;
  /** /proc/sys/<path>, e.g. readSysctl('net/netfilter/nf_conntrack_events'); null when unreadable */
  readSysctl(path: string): Promise<string | null>;
  /** writes /proc/sys/<path>, e.g. sysctl('net/ipv4/conf/eth0/send_redirects', '0') */
  sysctl(path: string, value: string): Promise<void>;
  /** any command, no shell; never rejects */
  exec(cmd: string, args: string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** starts a long-running process (its output ignored); `onExit` fires once when it ends or fails to start */
  spawn(cmd: string, args: string[], onExit: (code: number | null, signal: string | null) => void): HostProcess;
  /** a file's text, or null */
  readFile(path: string): string | null;
  /** writes a file (creating its directory), atomically: a reader sees the old text or the new */
  writeFile(path: string, text: string): void;
  /** removes a file if it exists */
  remove(path: string): void;
  /** command line of a live process, or null */
  cmdline(pid: number): string | null;
  /** signals a process (gone: nothing happens) */
  killPid(pid: number, sig: NodeJS.Signals): void;
  /** ends long-lived helpers (the nft session; a later nftLine starts a new one) */
  close(): void;
}

/** A command that failed: the message names it and says what it printed. */
export class HostCommandError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'HostCommandError';
  }
}
