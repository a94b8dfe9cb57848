// Resource limits of the API server: watches (per identity, buffered bytes, duration) and Events
// (size, count per node, time to live). Configured by the controller config's `api` object.
//
// The defaults leave a wide margin for a normal lab (1 controller, up to ~100 agents each holding
// ~8 watches under its own node identity, plus the harness and kubectl as the admin) while keeping
// one identity from exhausting the process the controller also runs in.

/** The API server's limits (see docs/controller.md, "Limits"). */
export interface ApiLimits {
  /** open watches one identity (user name) may hold at once; one more is a 429 (agents hold ~8) */
  maxWatchesPerUser: number;
  /**
   * bytes of events a watcher may have waiting for its connection (write() asked to wait for
   * 'drain'); beyond it the watcher is dropped (connection closed: the client resumes from its
   * last resourceVersion or relists, as kube clients do). The connection itself holds at most its
   * 16 KiB buffer plus the last event it took.
   */
  watchBufferBytes: number;
  /**
   * a watch without timeoutSeconds ends after this many seconds times a random factor in [1, 2)
   * (kube-apiserver's --min-request-timeout, 1800, with the same jitter)
   */
  minWatchTimeoutSeconds: number;
  /** a client's timeoutSeconds above this is cut to it (every watch ends some day; default 3600) */
  maxWatchTimeoutSeconds: number;
  /** largest Event accepted (its JSON, in bytes); larger is a 422 naming the biggest field */
  maxEventBytes: number;
  /** Events about one Node (involvedObject) kept at once; a node creating one more gets a 429 */
  maxEventsPerNode: number;
  /** an Event is deleted this many seconds after its last write (kube-apiserver's --event-ttl, 1h) */
  eventTTLSeconds: number;
}

export const DEFAULT_API_LIMITS: Readonly<ApiLimits> = Object.freeze({
  maxWatchesPerUser: 100,
  watchBufferBytes: 4 * 1024 * 1024,
  minWatchTimeoutSeconds: 1800,
  maxWatchTimeoutSeconds: 3600,
  maxEventBytes: 16 * 1024,
  maxEventsPerNode: 1000,
  eventTTLSeconds: 3600,
});

/** Fills defaults and checks the controller config's `api` object; throws an Error naming `api.<field>`. */
export function parseApiLimits(raw: unknown): ApiLimits {
  if (raw === undefined || raw === null) return { ...DEFAULT_API_LIMITS };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`api: must be an object of limits, got ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  const out: ApiLimits = { ...DEFAULT_API_LIMITS };
  for (const k of Object.keys(r)) {
    if (!(k in DEFAULT_API_LIMITS)) throw new Error(`api.${k}: unknown limit (known: ${Object.keys(DEFAULT_API_LIMITS).join(', ')})`);
    const v = r[k];
    const whole = k !== 'minWatchTimeoutSeconds' && k !== 'maxWatchTimeoutSeconds' && k !== 'eventTTLSeconds';
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (whole && !Number.isInteger(v))) {
      throw new Error(`api.${k}: Invalid value: ${JSON.stringify(v)}: must be a positive ${whole ? 'whole ' : ''}number`);
    }
    (out as unknown as Record<string, number>)[k] = v;
  }
  if (out.maxWatchTimeoutSeconds > 2_147_483)
    throw new Error(`api.maxWatchTimeoutSeconds: Invalid value: ${out.maxWatchTimeoutSeconds}: must be at most 2147483 (a timer's limit)`);
  if (out.minWatchTimeoutSeconds * 2 > 2_147_483)
    throw new Error(`api.minWatchTimeoutSeconds: Invalid value: ${out.minWatchTimeoutSeconds}: must be at most 1073741`);
  if (out.eventTTLSeconds > 2_147_483) throw new Error(`api.eventTTLSeconds: Invalid value: ${out.eventTTLSeconds}: must be at most 2147483`);
  return out;
}
