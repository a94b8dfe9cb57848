// Wire format of the agents' liveness heartbeats (agent/node/beacon.ts sends them,
// controller/reconcile/beacon-receiver.ts checks them): one UDP datagram, ASCII,
//     EGLHB3 <node> <epoch> <seq> <intervalMs> <mac>
// epoch = the sending agent's start time (ms), seq counts from 1 within an epoch, intervalMs = the
// interval the agent beats at right now (fast while it holds a floating IP, slow otherwise: the
// controller's grace period for the node follows it), mac = the first 32 hex digits of
// HMAC-SHA256(<the node's bearer token>, "EGLHB3 <node> <epoch> <seq> <intervalMs>").
//
// The controller acknowledges each heartbeat it accepted, to the datagram's source:
//     EGLHA2 <node> <epoch> <seq> <graceMs> <minGraceMs> <downs> <mac>
// graceMs = how long the controller keeps the node Up on that heartbeat alone (its grace period for
// the announced interval; a later heartbeat at a faster interval may shorten it), minGraceMs = the
// shortest grace it grants (the fast interval's), downs = `<controller incarnation>.<times this node
// came back Up after being Down>` (it changes whenever the controller may have had the node Down
// since the previous acknowledgement, a controller restart included), mac = the first 32 hex digits of
// HMAC-SHA256(<token>, everything before the mac). From the acknowledgements the agent keeps a
// lower bound of when the controller may declare it Down (agent/node/beacon.ts: the licence), and
// learns when the controller has had it Down (downs changed). A holder whose ARP fence never
// outlives the licence has stopped answering for its IPs before a Down decision can move them.
import { createHmac } from 'node:crypto';

export const HEARTBEAT_MAGIC = 'EGLHB3';
/** the controller's heartbeat port (UDP), on the API server's address */
export const HEARTBEAT_PORT = 7472;

export function heartbeatPayload(node: string, epoch: number, seq: number, intervalMs: number): string {
  return `${HEARTBEAT_MAGIC} ${node} ${epoch} ${seq} ${intervalMs}`;
}

export const HEARTBEAT_ACK_MAGIC = 'EGLHA2';

/** What the controller tells an agent about one accepted heartbeat. */
export interface HeartbeatGrant {
  graceMs: number;
  minGraceMs: number;
  /** `<controller incarnation>.<revivals>`: changes whenever the controller may have had the node Down */
  downs: string;
}

export function heartbeatAckPayload(node: string, epoch: number, seq: number, g: HeartbeatGrant): string {
  return `${HEARTBEAT_ACK_MAGIC} ${node} ${epoch} ${seq} ${Math.floor(g.graceMs)} ${Math.floor(g.minGraceMs)} ${g.downs}`;
}

/** A heartbeat's acknowledgement (the controller sends it; beacon.ts's worker spells the same check out). */
export function heartbeatAck(token: string, node: string, epoch: number, seq: number, g: HeartbeatGrant): string {
  const payload = heartbeatAckPayload(node, epoch, seq, g);
  return `${payload} ${heartbeatMac(token, payload)}`;
}

export function heartbeatMac(token: string, payload: string): string {
  return createHmac('sha256', token).update(payload).digest('hex').slice(0, 32);
}
