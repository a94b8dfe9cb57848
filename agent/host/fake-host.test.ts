import { describe, expect, it } from 'vitest';
import { FakeHost } from './fake-host.js';
import { parseNftTableJson } from '../masq/listing.js';

const TABLE = `table ip t {}
delete table ip t
table ip t {
\tset s {
\t\ttype ipv4_addr
\t\tflags interval
\t\tauto-merge
\t\telements = { 10.0.1.0/24, 10.0.2.0/24, 192.168.0.0/16 }
\t}
\tchain c {
\t\tip daddr @s return
\t}
}
`;

describe('FakeHost set model (element commands as nft 1.0.6 runs them)', () => {
  it('a table block installs its sets, elements merged as auto-merge holds them', async () => {
    const h = new FakeHost();
    await h.nftApply(TABLE);
    expect(h.setElements('ip', 't', 's')).toEqual(['10.0.1.0-10.0.2.255', '192.168.0.0/16']);
  });

  it('add merges, delete needs the exact element, flush empties; one failing command changes nothing', async () => {
    const h = new FakeHost();
    await h.nftApply(TABLE);
    await h.nftApply('add element ip t s { 10.0.3.0/24, 8.8.8.8 }\n');
    expect(h.setElements('ip', 't', 's')).toEqual(['8.8.8.8/32', '10.0.1.0-10.0.3.255', '192.168.0.0/16']);
    await expect(h.nftApply('add element ip t s { 1.1.1.1 }\ndelete element ip t s { 10.0.2.0/24 }\n')).rejects.toThrow(/element does not exist/);
    expect(h.setElements('ip', 't', 's')).toEqual(['8.8.8.8/32', '10.0.1.0-10.0.3.255', '192.168.0.0/16']);
    expect(h.applied).toHaveLength(2);
    await h.nftApply('delete element ip t s { 10.0.1.0-10.0.3.255 }\nadd element ip t s { 10.0.2.0/24 }\n');
    expect(h.setElements('ip', 't', 's')).toEqual(['8.8.8.8/32', '10.0.2.0/24', '192.168.0.0/16']);
    await h.nftApply('flush set ip t s\n');
    expect(h.setElements('ip', 't', 's')).toEqual([]);
    await expect(h.nftApply('flush set ip t nope\n')).rejects.toThrow(/No such file or directory/);
    await h.nftApply('delete table ip t\n');
    expect(h.setElements('ip', 't', 's')).toBeNull();
    await expect(h.nftApply('add element ip t s { 1.1.1.1 }\n')).rejects.toThrow(/No such file or directory/);
  });

  it('without auto-merge (as nft 1.0.6 in a lab node): adjacent elements stay apart, an overlap fails the transaction, delete needs the element as held', async () => {
    const h = new FakeHost();
    await h.nftApply(
      'table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.0.0.0/25, 10.0.0.128/25, 11.0.0.0-11.0.0.255 }\n\t}\n}\n',
    );
    expect(h.setElements('ip', 't', 's')).toEqual(['10.0.0.0/25', '10.0.0.128/25', '11.0.0.0/24']);
    await expect(h.nftApply('add element ip t s { 10.0.0.64/26 }\n')).rejects.toThrow(/interval overlaps with an existing one/);
    await expect(h.nftApply('delete element ip t s { 10.0.0.0/24 }\n')).rejects.toThrow(/element does not exist/);
    expect(h.setElements('ip', 't', 's')).toEqual(['10.0.0.0/25', '10.0.0.128/25', '11.0.0.0/24']);
    await h.nftApply('delete element ip t s { 11.0.0.0-11.0.0.255 }\nadd element ip t s { 11.0.0.0/16 }\n');
    expect(h.setElements('ip', 't', 's')).toEqual(['10.0.0.0/25', '10.0.0.128/25', '11.0.0.0/16']);
  });

  it('JSON listing: nft shape, elements unless terse; element updates do not change the rules part', async () => {
    const h = new FakeHost();
    await h.nftApply(TABLE);
    const full = parseNftTableJson((await h.nftList('ip', 't', { json: true }))!);
    const terse = parseNftTableJson((await h.nftList('ip', 't', { json: true, terse: true }))!);
    expect(full.rulesKey).toBe(terse.rulesKey);
    expect(full.sets.get('s')!.intervals).toHaveLength(2);
    await h.nftApply('add element ip t s { 1.1.1.1 }\n');
    const after = parseNftTableJson((await h.nftList('ip', 't', { json: true }))!);
    expect(after.rulesKey).toBe(full.rulesKey);
    expect(after.sets.get('s')!.intervals).toHaveLength(3);
    expect(h.calls.filter((c) => c.op === 'nftList').map((c) => c.arg)).toEqual(['-j ip t', '-j -t ip t', '-j ip t']);
    expect(await h.nftList('ip', 'nope', { json: true })).toBeNull();
  });
});
