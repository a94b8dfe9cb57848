import { describe, expect, it } from 'vitest';
import type { Timeline, TimelinePacket } from '../probe/timeline.js';
import { LEAK_COLOUR, escapeXml, labelLines, renderTimelineSvg } from './timeline-svg.js';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);

/** A recorded failover: 192.168.1.100 via node-1, 30 packets lost, two leaked with the node IP, then 192.168.1.100 via node-2. */
function failover(): Timeline {
  const packets: TimelinePacket[] = Array.from({ length: 100 }, (_, i) => {
    const seq = i + 1;
    const lost = seq >= 41 && seq <= 70;
    const leak = seq === 45 || seq === 46;
    return { seq, t: T0 + i * 20, replied: !lost, observedSources: lost ? (leak ? ['192.168.1.2'] : []) : ['192.168.1.100'], ...(lost ? {} : { rttMs: 0.8 }) };
  });
  return { from: 'alice/frontend-1', to: '8.8.8.8', proto: 'udp', port: 7007, intervalMs: 20, packets, unattributed: [] };
}

/** Tag balance of an XML text without a parser: every open tag closed in order. */
function assertWellFormed(xml: string): void {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|>/g;
  let m: RegExpExecArray | null;
  let roots = 0;
  while ((m = tag.exec(body))) {
    if (m[0] === '<' || m[0] === '>') throw new Error(`stray ${m[0]} at ${m.index}: ${body.slice(Math.max(0, m.index - 40), m.index + 40)}`);
    const [, close, name, , selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at ${m.index}`);
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) roots++;
  }
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
  // Text is escaped: no raw ampersand that is not an entity.
  expect(body).not.toMatch(/&(?!(amp|lt|gt|quot|apos);)/);
}

describe('renderTimelineSvg', () => {
  it('draws a recorded failover: legend, outage label, red leak marks, well-formed', () => {
    const t = failover();
    const svg = renderTimelineSvg({ timeline: t, allowedSources: ['192.168.1.100'] }, { title: 'kill node-1 <gateway> & fail over' });
    assertWellFormed(svg);
    expect(svg.startsWith('<?xml')).toBe(true);
    expect(svg).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    expect(svg).toContain('kill node-1 &lt;gateway&gt; &amp; fail over');
    // Legend: each observed source with its count, lost, leak, outage.
    expect(svg).toContain('192.168.1.100 (70)');
    expect(svg).toContain('192.168.1.2 (2)');
    expect(svg).toContain('lost (28)');
    expect(svg).toContain('leak: source not allowed (2)');
    // The outage: seq 41-70, from seq 40 (t=780) to seq 71 (t=1400): 620 ms, 30 lost.
    expect(svg).toContain('620 ms (30 lost)');
    expect(svg).toContain('outage seq 41-70');
    // Leaks in red, one per leaked packet; nothing else red.
    const red = svg.match(new RegExp(`<rect class="leak"[^>]*fill="${LEAK_COLOUR}"`, 'g')) ?? [];
    expect(red).toHaveLength(2);
    expect(svg.split(LEAK_COLOUR).length - 1).toBe(2 * 2 + 1);
    expect(svg).toContain('LEAK seq 45');
    // Row label and packet marks.
    expect(svg).toContain('udp alice/frontend-1 -&gt; 8.8.8.8:7007');
    expect(svg.match(/<circle class="pkt"/g)).toHaveLength(70);
    expect(svg.match(/<circle class="lost"/g)).toHaveLength(28);
  });

  it('without an allowed set nothing is a leak; several rows share the axis', () => {
    const a = failover();
    const b: Timeline = {
      ...failover(),
      from: 'default/client-3',
      proto: 'icmp',
      port: undefined as never,
      packets: failover().packets.map((p) => ({ ...p, t: p.t + 500 })),
    };
    delete (b as Partial<Timeline>).port;
    const svg = renderTimelineSvg([a, { timeline: b, label: 'icmp from node-3' }]);
    assertWellFormed(svg);
    expect(svg).not.toContain('class="leak"');
    expect(svg.match(/<g class="row"/g)).toHaveLength(2);
    expect(svg).toContain('icmp from node-3');
    expect(svg).toContain('lost (60)');
  });

  it('an open-ended outage says traffic did not resume; an empty timeline still renders', () => {
    const t = failover();
    for (const p of t.packets.slice(90)) p.replied = false;
    expect(renderTimelineSvg(t)).toContain('(10 lost, not resumed)');
    const empty = renderTimelineSvg({ ...t, packets: [] });
    assertWellFormed(empty);
    expect(empty).toContain('0 packets');
  });

  it('escapes XML', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
  });
});

describe('row labels are never cut off at the left edge (the report showed "IGKILL udp alice/…")', () => {
  /** x of the label column's right edge and the text of every label line. */
  const labels = (svg: string) =>
    [...svg.matchAll(/<text x="(\d+(?:\.\d+)?)" y="[\d.]+" text-anchor="end" class="label">(?:<title>[^<]*<\/title>)?([^<]*)<\/text>/g)].map((m) => ({
      x: Number(m[1]),
      text: m[2]!.replaceAll('&gt;', '>').replaceAll('&lt;', '<').replaceAll('&amp;', '&'),
    }));

  it("the label column grows with the longest label, so a label as long as the report's fits whole", () => {
    const label = 'SIGKILL udp alice/frontend-1 -> 8.8.8.8';
    const svg = renderTimelineSvg({ timeline: failover(), label });
    const [l] = labels(svg);
    expect(l!.text).toBe(label);
    // right-aligned at x: the text needs at most 7.2 px per character to the left of it
    expect(l!.x - label.length * 7.2).toBeGreaterThanOrEqual(0);
  });

  it('a label longer than 45 % of the width wraps at a space onto two lines, the rest ends in … and the whole label is the <title>', () => {
    const label = `partition tcp ${'x'.repeat(30)} alice/frontend-2 -> 8.8.8.8 and a long tail of words that cannot fit in two lines at all`;
    const svg = renderTimelineSvg({ timeline: failover(), label }, { width: 600 });
    const ls = labels(svg);
    expect(ls).toHaveLength(2);
    for (const l of ls) expect(l.x - l.text.length * 7.2).toBeGreaterThanOrEqual(0);
    // 600 px: a 270 px column, 35 characters a line
    expect(ls[0]!.text).toBe('partition tcp');
    expect(ls[1]!.text).toBe(`${'x'.repeat(30)} ali…`);
    expect(svg).toContain(`<title>${escapeXml(label)}</title>`);
    assertWellFormed(svg);
  });

  it('labelLines: one line when it fits; a word longer than a line is cut inside it', () => {
    expect(labelLines('short', 10)).toEqual(['short']);
    expect(labelLines('abcdefghijklmno', 5)).toEqual(['abcde', 'fghi…']);
    expect(labelLines('abcdefghij', 5)).toEqual(['abcde', 'fghij']);
    expect(labelLines('ab cd ef', 5)).toEqual(['ab cd', 'ef']);
  });
});
