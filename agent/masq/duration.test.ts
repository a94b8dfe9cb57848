import { describe, expect, it } from 'vitest';
import { parseGoDuration } from './duration.js';

function ns(s: string): bigint {
  const r = parseGoDuration(s);
  if (!r.ok) throw new Error(r.message);
  return r.ns;
}

describe('parseGoDuration matches Go time.ParseDuration', () => {
  it('parses the examples from the Go docs and tests', () => {
    expect(ns('0')).toBe(0n);
    expect(ns('5s')).toBe(5_000_000_000n);
    expect(ns('30s')).toBe(30_000_000_000n);
    expect(ns('1478s')).toBe(1_478_000_000_000n);
    expect(ns('-5s')).toBe(-5_000_000_000n);
    expect(ns('+5s')).toBe(5_000_000_000n);
    expect(ns('-0')).toBe(0n);
    expect(ns('5.0s')).toBe(5_000_000_000n);
    expect(ns('5.6s')).toBe(5_600_000_000n);
    expect(ns('5.s')).toBe(5_000_000_000n);
    expect(ns('.5s')).toBe(500_000_000n);
    expect(ns('1.004s')).toBe(1_004_000_000n);
    expect(ns('100.00100s')).toBe(100_001_000_000n);
    expect(ns('10ns')).toBe(10n);
    expect(ns('11us')).toBe(11_000n);
    expect(ns('12\u00b5s')).toBe(12_000n);
    expect(ns('12\u03bcs')).toBe(12_000n);
    expect(ns('13ms')).toBe(13_000_000n);
    expect(ns('15m')).toBe(900_000_000_000n);
    expect(ns('16h')).toBe(57_600_000_000_000n);
    expect(ns('3h30m')).toBe(12_600_000_000_000n);
    expect(ns('10.5s4m')).toBe(250_500_000_000n);
    expect(ns('-2m3.4s')).toBe(-123_400_000_000n);
    expect(ns('1h2m3s4ms5us6ns')).toBe(3_723_004_005_006n);
    expect(ns('39h9m14.425s')).toBe(140_954_425_000_000n);
    expect(ns('52763797000ns')).toBe(52_763_797_000n);
    expect(ns('0.3333333333333333333h')).toBe(1_200_000_000_000n);
    expect(ns('9007199254740993ns')).toBe(9_007_199_254_740_993n);
    expect(ns('9223372036854775807ns')).toBe(9_223_372_036_854_775_807n);
    expect(ns('9223372036854775.807us')).toBe(9_223_372_036_854_775_807n);
    expect(ns('-9223372036854775808ns')).toBe(-9_223_372_036_854_775_808n);
    expect(ns('0.100000000000000000000h')).toBe(360_000_000_000n);
  });

  it('refuses what Go refuses, with Go messages', () => {
    const msg = (s: string) => {
      const r = parseGoDuration(s);
      if (r.ok) throw new Error(`accepted ${s}`);
      return r.message;
    };
    expect(msg('')).toBe('time: invalid duration ""');
    expect(msg('3')).toBe('time: missing unit in duration "3"');
    expect(msg('-')).toBe('time: invalid duration "-"');
    expect(msg('s')).toBe('time: invalid duration "s"');
    expect(msg('.')).toBe('time: invalid duration "."');
    expect(msg('-.')).toBe('time: invalid duration "-."');
    expect(msg('.s')).toBe('time: invalid duration ".s"');
    expect(msg('+.s')).toBe('time: invalid duration "+.s"');
    expect(msg('1d')).toBe('time: unknown unit "d" in duration "1d"');
    expect(msg('9223372036854775808ns')).toBe('time: invalid duration "9223372036854775808ns"');
    expect(msg('9223372036854775.808us')).toBe('time: invalid duration "9223372036854775.808us"');
    expect(msg('3000000h')).toBe('time: invalid duration "3000000h"');
  });
});
