/**
 * SIGINT/SIGTERM during a long CLI step (up, demo, chaos, replay): the first signal aborts the
 * returned signal and says so on stderr, so the step can clean up (the command then exits 130);
 * dispose() removes the handlers.
 */
export function abortOnSignal(): { signal: AbortSignal; dispose(): void } {
  const ctl = new AbortController();
  const on = (sig: NodeJS.Signals) => {
    if (ctl.signal.aborted) return;
    process.stderr.write(`${sig}: stopping and cleaning up...\n`);
    ctl.abort();
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    signal: ctl.signal,
    dispose() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}
