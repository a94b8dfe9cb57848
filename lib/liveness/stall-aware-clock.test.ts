import { describe, expect, it } from 'vitest';
import { StallAwareClock } from './stall-aware-clock.js';

describe('StallAwareClock', () => {
  it('counts wall time in full while the observer runs, and at most maxStepMs of a stall', () => {
    let wall = 1000;
    const c = new StallAwareClock(() => wall, 150);
    expect(c.now()).toBe(0);
    for (let i = 0; i < 10; i++) {
      wall += 50;
      c.now();
    }
    expect(c.now()).toBe(500);
    wall += 2000; // the observer was blocked for 2 s
    expect(c.now()).toBe(650);
    expect(c.stalled).toBe(1850);
    wall -= 10; // a wall clock step backwards counts nothing
    expect(c.now()).toBe(650);
  });
});
