/**
 * Bounded waits that a stop can cut short: the one home of "wait for this, at most that long, unless
 * we are told to stop" (the agent's start waits, agent/node/module.ts; the informer's retry pauses,
 * lib/kube/client.ts). Chaos seed 627642971: an agent restarted behind a partition waited out its
 * start and its informer's list before it could exit, 17.5 s after SIGTERM.
 */

/** How a bounded wait ended. */
export type Settled = 'done' | 'timeout' | 'stopped';

/**
 * Waits for `p` at most `ms`, or until `signal` aborts; says which came first. A rejection of `p`
 * counts as 'done' (the caller still holds `p` and reads its outcome). The timer and the listener
 * are removed whichever way it ends.
 */
export function settleWithin(p: Promise<unknown>, ms: number, signal: AbortSignal): Promise<Settled> {
  if (signal.aborted) return Promise.resolve('stopped');
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (how: Settled) => {
      if (timer) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(how);
    };
    const onAbort = () => finish('stopped');
    timer = setTimeout(() => finish('timeout'), ms);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      () => finish('done'),
      () => finish('done'),
    );
  });
}

/**
 * Waits `ms`, or less when `signal` aborts (a pause between retries that a stop ends at once). Its
 * own timer and listener, both removed when it ends: nothing of a pause outlives it.
 */
export function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
