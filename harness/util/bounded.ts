/**
 * Work on many items, a bounded number at a time (p-limit), that stops starting new items at the
 * first failure: the items not started yet are dropped, the ones running are waited for, and then
 * the first error is thrown. (Promise.all over p-limit alone rejects at once but leaves the queue
 * running: a lab's start that failed on one node went on starting helpers and agents in the other
 * nodes while Lab.up removed their containers.)
 */
import pLimit from 'p-limit';

export async function forEachBounded<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  // rejectOnClear: the dropped items' promises reject (with clearQueue alone they would never settle)
  const limit = pLimit({ concurrency, rejectOnClear: true });
  let failure: { error: unknown } | undefined;
  const runs = items.map((item) =>
    limit(async () => {
      if (failure) return;
      try {
        await fn(item);
      } catch (error) {
        if (!failure) failure = { error };
        limit.clearQueue();
      }
    }),
  );
  await Promise.allSettled(runs);
  if (failure) throw failure.error;
}
