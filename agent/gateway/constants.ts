/**
 * Constants of the egress NAT gateway datapath (agent/gateway/). See docs/gateway.md.
 *
 * Mark layout (32-bit skb mark):
 *
 *   0x00002000  EGRESS_GW_BYPASS_MARK (agent/masq/constants.ts): the masquerade chain returns first
 *               for packets carrying it. Every packet the gateway datapath claims carries it.
 *   0x00ff0000  GW_MARK_MASK: index (1..255) of the gateway node the packet is policy-routed to;
 *               0 = not re-routed (the gateway is this node itself, or not a gateway packet).
 *               egress_snat takes only index 0: a CNI setting these bits would get no SNAT here
 *               (the guard then drops: fail-closed).
 *   0x00001000  GW_FORWARD_OK_MARK: on the holder, set in prerouting on traffic of another node's
 *               pod that egress_snat will SNAT. The forward fence (an ip rule, below) blackholes
 *               every packet of another node's pod forwarded here WITHOUT it, so nothing can be
 *               forwarded un-NATed when the nft hooks are gone (netns teardown of a killed node:
 *               the kernel releases nftables hooks before the interfaces; `nft flush ruleset`).
 *
 * Bits 16-23 stay clear of kube-proxy (0x4000/0x8000), Cilium (0x0f00) and the bypass bit; Calico
 * uses the upper 16 bits by default (0xffff0000), so in a Calico cluster GW_MARK_MASK would have to
 * move (the lab runs no CNI).
 */
export { EGRESS_GW_BYPASS_MARK, EGRESS_GW_BYPASS_MASK } from '../masq/constants.js';

/** nftables table (family ip) for the whole gateway datapath; also the ARP fence table (family arp). */
export const GW_TABLE = 'egresslab_gw';

export const GW_MARK_SHIFT = 16;
export const GW_MARK_MASK = 0x00ff0000;
/** At most this many other nodes can be gateways for this node (8 bits of mark). */
export const GW_MAX_INDEX = 255;

/** Routing table of gateway index i is GW_TABLE_BASE + i (so 7101..7355). */
export const GW_TABLE_BASE = 7100;
/** `ip rule` preference of the fwmark rules (before `main` at 32766). */
export const GW_RULE_PREF = 1000;

/** Forward fence: see GW_FORWARD_OK_MARK. Table GW_FENCE_TABLE = `blackhole default` + `throw` for this node's pod CIDRs. */
export const GW_FORWARD_OK_MARK = 0x00001000;
export const GW_FENCE_TABLE = GW_TABLE_BASE;
/**
 * The boot hook's pod guard (render.ts renderBootFence): an nft table the node's init installs
 * before the agent runs, dropping what this node's own pods send out of the uplink to anything but
 * the cluster's pods. The agent deletes it once every module has programmed the node (agent.ts).
 */
export const BOOT_GUARD_TABLE = 'egresslab_boot';
export const GW_FENCE_PREF = 990;

/** nft chain priorities. */
export const PRIO_PREROUTING = 'mangle - 10'; // -160: after conntrack (-200), before DNAT/mangle users
export const PRIO_SNAT = 'srcnat - 10'; //        90: before egresslab_masq (srcnat = 100)
export const PRIO_GUARD = 'srcnat + 10'; //      110: after every SNAT: sees the final source address

/** ARP fence: an owned floating IP is answered only while its element in @alive is refreshed. */
export const ARP_ALIVE_TIMEOUT_MS = 1000;
export const ARP_ALIVE_REFRESH_MS = 200;
/**
 * The ARP fence never outlives the controller's acknowledged grace (NodeModuleContext.licence): an
 * element's timeout ends this long before the grace of the last acknowledged heartbeat does, so the
 * old holder has stopped answering for an IP before the controller can even decide to move it
 * (covers the nft commit's own latency on a busy node).
 */
export const ARP_FENCE_MARGIN_MS = 150;
/**
 * A holder whose refresh timer fires this late (it did not run: paused, hung, starved) stops
 * refreshing the ARP fence and announcing until a fresh read of the gateway status confirms what it
 * holds: the controller (600 ms expiry) may have moved its IPs meanwhile. Below the expiry, and the
 * fence element (1 s) outlives a confirming read, so a node that was merely slow loses nothing.
 */
export const STALE_AFTER_MS = 450;

/**
 * Address conflict detection before a floating IP is answered for (RFC 5227's probe, issue 12): a
 * node taking an IP asks who has it (from 0.0.0.0) and waits this long after the request left; the
 * IP is added meanwhile but the ARP fence keeps it unanswered and unannounced until nobody answered.
 * A cooperating old holder is silent by then (its fence ends before the controller could move the
 * IP), so the probe costs its wait and only stops a host that should not answer: a stale or
 * foreign owner. 0 turns the probe off.
 */
export const DAD_PROBE_MS = 100;
/** A probe that was answered is tried again this long later, until nobody answers. */
export const DAD_RETRY_MS = 200;
/**
 * An answer that goes on this long is reported (Warning Event `EgressIPConflict`): longer than a
 * cooperating holder can answer after losing an IP (its fence element, ARP_ALIVE_TIMEOUT_MS, or
 * the release its watch brings).
 */
export const DAD_REPORT_AFTER_MS = 2 * ARP_ALIVE_TIMEOUT_MS;

/** Gratuitous ARP schedule after taking a floating IP (ms after the address was added). */
export const GARP_SCHEDULE_MS: readonly number[] = [0, 100, 300, 700, 1500, 3000];

/** Liveness heartbeats (BFD-like) between agents, UDP on the node segment. */
export const HEARTBEAT_PORT = 7471;
export const HEARTBEAT_INTERVAL_MS = 100;
export const HEARTBEAT_MISSES = 3;
/** No peer heard for this long: maybe cut off (then confirmed by a failing API read). */
export const HEARTBEAT_ISOLATION_MS = 400;
