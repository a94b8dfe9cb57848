/**
 * Is this node cut off, or is the machine merely busy? (issue 10)
 *
 * A holder that hears no peer for `isolationMs` asks the API for the gateway's status with a short
 * deadline; before this, a failed read fenced the node (it gave its floating IPs up). Both signals
 * depend on other processes being scheduled: peers that are starved send no heartbeats, and a
 * starved API server answers late. Full run "2w" (two labs at once on 2 cores, load ~9) showed it:
 * a holder fenced itself for 350 ms with no fault injected, its peers busy applying policies and the
 * controller late by more than 500 ms.
 *
 * A third signal does not depend on any process being scheduled: the API server's host answers a
 * TCP handshake from its kernel (SYN-ACK, or RST when nothing listens) whatever its processes do. A
 * node whose frames reach the controller's host is not cut off from it; a node that is gets no answer
 * at all. So the node is cut off only when the read fails AND the API's host stays silent for the
 * same deadline; both run at once, so a cut-off node is fenced as fast as before.
 */
import { connect, type Socket } from 'node:net';

/** Errors that mean the network did not deliver: no host answered. */
const SILENT_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ETIMEDOUT']);

/**
 * Whether host:port answers a TCP handshake within timeoutMs: a completed handshake or a refusal
 * (RST) is an answer; a timeout or an unreachable host/network is silence. The deadline gives up only
 * after the next I/O poll (a stalled process runs its timers before it reads its sockets).
 */
export function tcpAnswers(
  host: string,
  port: number,
  timeoutMs: number,
  open: (host: string, port: number) => Socket = (h, p) => connect({ host: h, port: p }),
): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const s = open(host, port);
    const finish = (answered: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => setImmediate(() => finish(false)), timeoutMs);
    s.once('connect', () => finish(true));
    s.once('error', (e: NodeJS.ErrnoException) => finish(!SILENT_CODES.has(e.code ?? '')));
  });
}

/** What confirming a cut-off needs (the gateway module's API read; tcpAnswers to the API's host). */
export interface CutOffProbes<T> {
  read(timeoutMs: number): Promise<T>;
  apiHostAnswers(timeoutMs: number): Promise<boolean>;
}

export type CutOffVerdict<T> =
  /** the API answered */
  | { cutOff: false; read: T }
  /** the API did not answer in time, but its host did: a busy machine, not a cut-off node */
  | { cutOff: false; busy: string }
  /** neither answered: this node is cut off */
  | { cutOff: true; why: string };

/** Runs the read and the handshake at once; cut off only when both stay unanswered. */
export async function confirmCutOff<T>(p: CutOffProbes<T>, timeoutMs: number, message: (e: unknown) => string): Promise<CutOffVerdict<T>> {
  const host = p.apiHostAnswers(timeoutMs).catch(() => false);
  try {
    return { cutOff: false, read: await p.read(timeoutMs) };
  } catch (e) {
    const why = message(e);
    return (await host)
      ? { cutOff: false, busy: `${why}, but the API server's host answered a TCP handshake` }
      : { cutOff: true, why: `${why}; the API server's host did not answer a TCP handshake either` };
  }
}
