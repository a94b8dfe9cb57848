/**
 * Constants shared by the masquerade (ip-masq-agent) part of the node agent.
 * See docs/masquerade.md for the reasoning behind each value.
 */

/** nftables table that holds everything this agent programs (one per address family). */
export const MASQ_TABLE = 'egresslab_masq';

/** Named interval set holding the (normalised) non-masquerade destinations. */
export const NONMASQ_SET = 'nonmasq';

/** Named interval set holding the node's pod CIDR(s): only packets sourced there are touched. */
export const PODCIDR_SET = 'podcidrs';

/** Base chain hooked at nat/postrouting, priority srcnat. */
export const MASQ_CHAIN = 'postrouting';

/**
 * Egress-gateway bypass hook. The masquerade chain's FIRST rule is
 *   meta mark & EGRESS_GW_BYPASS_MASK == EGRESS_GW_BYPASS_MARK return
 * so that packets the egress NAT gateway datapath has already claimed (and will SNAT to a floating
 * IP itself) are never masqueraded to the node IP here. The gateway work sets this bit (and only
 * this bit: use `meta mark set meta mark | 0x00002000`) on packets it wants to bypass masquerade.
 *
 * Bit 13 was chosen because kube-proxy uses bits 14 (0x4000, masquerade) and 15 (0x8000, drop),
 * Calico uses the upper 16 bits by default, and Cilium uses 0x0f00. The lab runs none of those, but
 * keep the bit out of their way so that real-cluster intuition carries over.
 */
export const EGRESS_GW_BYPASS_MARK = 0x00002000;
export const EGRESS_GW_BYPASS_MASK = 0x00002000;

/** Upstream `linkLocalCIDR` / `linkLocalCIDRIPv6` (cmd/ip-masq-agent/ip-masq-agent.go). */
export { LINK_LOCAL_CIDR, LINK_LOCAL_CIDR_IPV6 } from '../../lib/net/addresses.js';

/** Default non-masquerade destinations (SPEC section 1): lib/kube/well-known.ts. */
export { DEFAULT_NON_MASQUERADE_CIDRS } from '../../lib/kube/well-known.js';

/** Upstream default resyncInterval: 60s. */
export const DEFAULT_RESYNC_INTERVAL_MS = 60_000;

/**
 * Upstream accepts any Go duration, including "0s" and negative ones, and then hot-loops
 * (time.Sleep of <= 0 returns at once). We accept the same strings but never resync faster
 * than this.
 */
export const MIN_RESYNC_INTERVAL_MS = 1_000;

/**
 * The longest resync period a timer can wait: Node's setTimeout takes at most 2^31-1 ms (24.8 days)
 * and fires after 1 ms for anything longer, so a Go-valid `720h` made every agent resync in a hot
 * loop (269 `nft list` per second, issue 12). Longer intervals are clamped to this, with a warning.
 */
export const MAX_RESYNC_INTERVAL_MS = 2 ** 31 - 1;

/** Where upstream reads its config (ConfigMap key `config` projected as this file). */
export const DEFAULT_CONFIG_PATH = '/etc/config/ip-masq-agent';

/** Default location of the state file that `egresslab status` reads. */
export const DEFAULT_STATE_PATH = '/run/egresslab/masq-state.json';
