// Wire format of the agents' liveness heartbeats (agent/node/beacon.ts sends them,
// controller/reconcile/beacon-receiver.ts checks them): one UDP datagram, ASCII,
//     EGLHB3 <node> <epoch> <seq> <intervalMs> <mac>
// epoch = the sending agent's start time (ms), seq counts from 1 within an epoch, intervalMs = the
// interval the agent beats at right now (fast while it holds a floating IP, slow otherwise: the
// controller's grace period for the node follows it), mac = the first 32 hex digits of
// HMAC-SHA256(<the node's bearer token>, "EGLHB3 <node> <epoch> <seq> <intervalMs>").
//
// The controller acknowledges each heartbeat it accepted, to the datagram's source:
//     EGLHA1 <node> <epoch> <seq> <graceMs> <mac>
// graceMs = how long the controller keeps the node Up on that heartbeat alone (its grace period for
// the announced interval), mac = the first 32 hex digits of HMAC-SHA256(<token>, "EGLHA1 <node>
// <epoch> <seq> <graceMs>"). The agent counts that grace from when it SENT the heartbeat: the
// controller cannot declare the node Down before then, so a holder whose ARP fence never outlives
// it (agent/node/gateway-module.ts) cannot answer for an IP the controller has given to another node.
import { createHmac } from 'node:crypto';

export const HEARTBEAT_MAGIC = 'EGLHB3';
/** the controller's heartbeat port (UDP), on the API server's address */
export const HEARTBEAT_PORT = 7472;

export function heartbeatPayload(node: string, epoch: number, seq: number, intervalMs: number): string {
  return `${HEARTBEAT_MAGIC} ${node} ${epoch} ${seq} ${intervalMs}`;
}

export const HEARTBEAT_ACK_MAGIC = 'EGLHA1';

export function heartbeatAckPayload(node: string, epoch: number, seq: number, graceMs: number): string {
  return `${HEARTBEAT_ACK_MAGIC} ${node} ${epoch} ${seq} ${graceMs}`;
}

/** A heartbeat's acknowledgement (the controller sends it; beacon.ts's worker spells the same check out). */
export function heartbeatAck(token: string, node: string, epoch: number, seq: number, graceMs: number): string {
  const payload = heartbeatAckPayload(node, epoch, seq, graceMs);
  return `${payload} ${heartbeatMac(token, payload)}`;
}

export function heartbeatMac(token: string, payload: string): string {
  return createHmac('sha256', token).update(payload).digest('hex').slice(0, 32);
}
