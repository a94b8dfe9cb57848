import { describe, expect, it } from 'vitest';
import type { Timeline, TimelinePacket } from '../probe/timeline.js';
import { LEAK_COLOUR, escapeXml, renderTimelineSvg } from './timeline-svg.js';

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
    const b: Timeline = { ...failover(), from: 'default/client-3', proto: 'icmp', port: undefined as never, packets: failover().packets.map((p) => ({ ...p, t: p.t + 500 })) };
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
