// Wire format of the agents' liveness heartbeats (agent/node/beacon.ts sends them,
// controller/reconcile/beacon-receiver.ts checks them): one UDP datagram, ASCII,
//     EGLHB3 <node> <epoch> <seq> <intervalMs> <mac>
// epoch = the sending agent's start time (ms), seq counts from 1 within an epoch, intervalMs = the
// interval the agent beats at right now (fast while it holds a floating IP, slow otherwise: the
// controller's grace period for the node follows it), mac = the first 32 hex digits of
// HMAC-SHA256(<the node's bearer token>, "EGLHB3 <node> <epoch> <seq> <intervalMs>").
import { createHmac } from 'node:crypto';

export const HEARTBEAT_MAGIC = 'EGLHB3';
/** the controller's heartbeat port (UDP), on the API server's address */
export const HEARTBEAT_PORT = 7472;

export function heartbeatPayload(node: string, epoch: number, seq: number, intervalMs: number): string {
  return `${HEARTBEAT_MAGIC} ${node} ${epoch} ${seq} ${intervalMs}`;
}

export function heartbeatMac(token: string, payload: string): string {
  return createHmac('sha256', token).update(payload).digest('hex').slice(0, 32);
}
