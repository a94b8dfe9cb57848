/** Reproducible sets of disjoint IPv4 CIDRs (benchmark and test inputs). */

/**
 * `count` disjoint CIDRs (/24../30 blocks in distinct /24s of 11.0.0.0-126.255.255.255), from a
 * seeded linear congruential generator: the same seed gives the same set.
 */
export function randomDisjointCidrs(count: number, seed: number): string[] {
  // Pick distinct /24 .. /30 blocks inside distinct /16s' worth of space: choose a random aligned
  // block in 11.0.0.0-126.255.255.255 and keep it if its /24 has not been used yet.
  let x = seed >>> 0;
  const rnd = (): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x;
  };
  const used = new Set<number>();
  const out: string[] = [];
  while (out.length < count) {
    const slash24 = (11 << 16) + (rnd() % (116 << 16)); // index of a /24 in 11.0.0.0/8 .. 126.0.0.0/8
    if (used.has(slash24)) continue;
    used.add(slash24);
    const prefix = 24 + (rnd() % 7); // /24 .. /30
    const hostBits = 32 - prefix;
    const offset = hostBits >= 8 ? 0 : ((rnd() % 256) >> hostBits) << hostBits;
    const a = slash24 * 256 + offset;
    out.push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${prefix}`);
  }
  return out;
}
