/**
 * The probe wire protocol shared by the in-lab probe client, the responders and the harness.
 * TCP and UDP probes carry `EGL <token> <seq>\n`; the responder answers with one JSON line saying
 * what it observed. ICMP probes carry the token as ping's fill pattern (8 bytes, repeated).
 * Runs on Node 18 inside lab containers: no dependencies.
 */
import { randomBytes } from 'node:crypto';

export const RESPONDER_PORT = 7007;
export const RUN_DIR = '/run/egresslab';
export const OBSERVED_LOG = `${RUN_DIR}/observed.jsonl`;

export type Proto = 'tcp' | 'udp' | 'icmp';
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'icmp'];

/** 16 hex characters: 8 bytes, the length of ping's fill pattern. */
export function newToken(): string {
  return randomBytes(8).toString('hex');
}

export function encodeProbe(token: string, seq: number): string {
  return `EGL ${token} ${seq}\n`;
}

export function decodeProbe(payload: Buffer | string): { token: string; seq: number } | undefined {
  const text = typeof payload === 'string' ? payload : payload.subarray(0, 64).toString('latin1');
  const m = /^EGL ([0-9a-f]{16}) (\d+)/.exec(text);
  return m ? { token: m[1]!, seq: Number(m[2]) } : undefined;
}

/** What a responder answers to each probe message. */
export interface Reply {
  responder: string;
  observedSource: string;
  observedPort: number;
  token?: string;
  seq?: number;
  t: number;
}

/** One packet a responder's capture saw arriving (a TCP SYN, a UDP datagram or an ICMP echo request). */
export interface Observation {
  t: number;
  p: Proto;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** ICMP identifier and sequence. */
  id?: number;
  seq?: number;
  /** Probe token and sequence found in the payload. */
  tok?: string;
  pseq?: number;
  /** Lookup key for TCP SYNs, which carry no payload: "tcp <dst>:<dport>". */
  k?: string;
}

export function synKey(dst: string, dport: number): string {
  return `tcp ${dst}:${dport}`;
}

/** ping fills its payload with the pattern after a 16-byte timestamp: the token is at bytes 16..24. */
export function icmpToken(payload: Buffer): string | undefined {
  if (payload.length < 24) return undefined;
  return payload.subarray(16, 24).toString('hex');
}

/** Result of one probe packet, as the client saw it. */
export interface ClientRecord {
  seq: number;
  /** Send time, ms since the epoch. */
  t: number;
  replied: boolean;
  rttMs?: number;
  /** From the responder's reply (TCP/UDP). */
  observedSource?: string;
  observedPort?: number;
  localPort?: number;
  error?: string;
}
