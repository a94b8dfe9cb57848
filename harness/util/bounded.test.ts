import { describe, expect, it } from 'vitest';
import { forEachBounded } from './bounded.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('forEachBounded', () => {
  it('runs every item, at most `concurrency` at once, in order of the items', async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    await forEachBounded([1, 2, 3, 4, 5, 6, 7], 3, async (i) => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      await tick(5);
      running--;
    });
    expect(started).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
  });

  it('at the first failure starts nothing more, waits for the items running, then throws the first error', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const run = forEachBounded([1, 2, 3, 4, 5, 6], 2, async (i) => {
      started.push(i);
      await tick(i === 2 ? 2 : 20);
      if (i === 2) throw new Error('node 2 failed');
      if (i === 3) throw new Error('node 3 failed too');
      finished.push(i);
    });
    await expect(run).rejects.toThrow('node 2 failed');
    // 2's slot frees only once its failure is recorded and the queue dropped: nothing after it starts
    expect(started).toEqual([1, 2]);
    // 1 was running when 2 failed: it was waited for
    expect(finished).toEqual([1]);
  });

  it('does nothing for no items', async () => {
    await expect(forEachBounded([], 4, async () => {})).resolves.toBeUndefined();
  });
});
