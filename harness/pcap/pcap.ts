/**
 * A small pcap reader: the classic libpcap file/stream format (what `tcpdump -w` writes) and the
 * IPv4/TCP/UDP/ICMP headers the lab cares about. Used inside the lab (responders decode their live
 * capture) and by the harness (reading capture files). No dependencies; runs on Node 18.
 */

export const LINKTYPE = Object.freeze({ ETHERNET: 1, RAW: 101, LINUX_SLL: 113, LINUX_SLL2: 276, IPV4: 228 });

/** One raw packet of a pcap file. */
export interface PcapPacket {
  /** Capture time, ms since the epoch (fractional). */
  t: number;
  linktype: number;
  data: Buffer;
  origLen: number;
}

export type Direction = 'in' | 'out' | 'unknown';

/** A packet decoded down to IP and TCP/UDP/ICMP, with its direction on the interface. */
export interface DecodedPacket {
  t: number;
  direction: Direction;
  /** Interface index (LINUX_SLL2 only). */
  ifindex?: number;
  /** Ethernet source/destination MAC and ARP, when the link layer has them. */
  srcMac?: string;
  dstMac?: string;
  arp?: { op: number; senderIp: string; senderMac: string; targetIp: string };
  ip?: {
    src: string;
    dst: string;
    proto: number;
    ttl: number;
    tcp?: { sport: number; dport: number; flags: number; payload: Buffer /** the segment's sequence number (a SYN's: the connection's ISN) */; seq?: number };
    udp?: { sport: number; dport: number; payload: Buffer };
    icmp?: { type: number; code: number; id: number; seq: number; payload: Buffer };
  };
}

export const TCP_FLAGS = Object.freeze({ FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 });

/** Incremental reader: feed chunks of a pcap stream, get whole packets back. */
export class PcapStreamReader {
  private buf: Buffer = Buffer.alloc(0);
  private little = true;
  private nanos = false;
  linktype = -1;

  /** Feeds a chunk; returns the packets it completed. */
  push(chunk: Buffer): PcapPacket[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const packets: PcapPacket[] = [];
    if (this.linktype < 0) {
      if (this.buf.length < 24) return packets;
      const magicLE = this.buf.readUInt32LE(0);
      if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) this.little = true;
      else {
        const magicBE = this.buf.readUInt32BE(0);
        if (magicBE !== 0xa1b2c3d4 && magicBE !== 0xa1b23c4d) throw new Error(`not a pcap stream (magic ${magicLE.toString(16)})`);
        this.little = false;
      }
      const magic = this.little ? magicLE : this.buf.readUInt32BE(0);
      this.nanos = magic === 0xa1b23c4d;
      this.linktype = (this.little ? this.buf.readUInt32LE(20) : this.buf.readUInt32BE(20)) & 0x0fffffff;
      this.buf = this.buf.subarray(24);
    }
    const u32 = (o: number) => (this.little ? this.buf.readUInt32LE(o) : this.buf.readUInt32BE(o));
    while (this.buf.length >= 16) {
      const incl = u32(8);
      if (this.buf.length < 16 + incl) break;
      const sec = u32(0);
      const frac = u32(4);
      packets.push({
        t: sec * 1000 + (this.nanos ? frac / 1e6 : frac / 1e3),
        linktype: this.linktype,
        origLen: u32(12),
        data: Buffer.from(this.buf.subarray(16, 16 + incl)),
      });
      this.buf = this.buf.subarray(16 + incl);
    }
    return packets;
  }
}

/** Reads a whole pcap file's content. */
export function readPcap(content: Buffer): PcapPacket[] {
  return new PcapStreamReader().push(content);
}

function mac(b: Buffer, o: number): string {
  return Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

function ip4(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function decodeArp(b: Buffer): DecodedPacket['arp'] | undefined {
  if (b.length < 28) return undefined;
  return { op: b.readUInt16BE(6), senderMac: mac(b, 8), senderIp: ip4(b, 14), targetIp: ip4(b, 24) };
}

function decodeIPv4(b: Buffer): DecodedPacket['ip'] | undefined {
  if (b.length < 20 || b[0]! >> 4 !== 4) return undefined;
  const ihl = (b[0]! & 0x0f) * 4;
  const total = Math.min(b.readUInt16BE(2), b.length);
  const proto = b[9]!;
  const fragOffset = b.readUInt16BE(6) & 0x1fff;
  const ip: NonNullable<DecodedPacket['ip']> = { src: ip4(b, 12), dst: ip4(b, 16), proto, ttl: b[8]! };
  const l4 = b.subarray(ihl, total);
  if (fragOffset !== 0) return ip;
  if (proto === 6 && l4.length >= 20) {
    const off = (l4[12]! >> 4) * 4;
    ip.tcp = { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), flags: l4[13]!, payload: l4.subarray(off), seq: l4.readUInt32BE(4) };
  } else if (proto === 17 && l4.length >= 8) {
    ip.udp = { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), payload: l4.subarray(8) };
  } else if (proto === 1 && l4.length >= 8) {
    ip.icmp = { type: l4[0]!, code: l4[1]!, id: l4.readUInt16BE(4), seq: l4.readUInt16BE(6), payload: l4.subarray(8) };
  }
  return ip;
}

/** Decodes the link layer and, for IPv4 and ARP, the headers above it. */
export function decodePacket(p: PcapPacket): DecodedPacket {
  const d = p.data;
  const out: DecodedPacket = { t: p.t, direction: 'unknown' };
  let etherType = -1;
  let payload = d;
  switch (p.linktype) {
    case LINKTYPE.ETHERNET:
      if (d.length < 14) return out;
      out.dstMac = mac(d, 0);
      out.srcMac = mac(d, 6);
      etherType = d.readUInt16BE(12);
      payload = d.subarray(14);
      break;
    case LINKTYPE.LINUX_SLL: {
      if (d.length < 16) return out;
      const pkttype = d.readUInt16BE(0);
      out.direction = pkttype === 4 ? 'out' : 'in';
      if (d.readUInt16BE(4) === 6) out.srcMac = mac(d, 6);
      etherType = d.readUInt16BE(14);
      payload = d.subarray(16);
      break;
    }
    case LINKTYPE.LINUX_SLL2: {
      if (d.length < 20) return out;
      etherType = d.readUInt16BE(0);
      out.ifindex = d.readUInt32BE(4);
      out.direction = d[10] === 4 ? 'out' : 'in';
      if (d[11] === 6) out.srcMac = mac(d, 12);
      payload = d.subarray(20);
      break;
    }
    case LINKTYPE.RAW:
    case LINKTYPE.IPV4:
      etherType = 0x0800;
      break;
    default:
      return out;
  }
  if (etherType === 0x0800) {
    const ip = decodeIPv4(payload);
    if (ip) out.ip = ip;
  } else if (etherType === 0x0806) {
    const arp = decodeArp(payload);
    if (arp) out.arp = arp;
  }
  return out;
}

/** One-line summary in tcpdump's spirit, for failure messages and timelines. */
export function describePacket(p: DecodedPacket): string {
  if (p.arp) return `ARP ${p.arp.op === 1 ? 'who-has' : 'reply'} ${p.arp.targetIp} tell ${p.arp.senderIp} (${p.arp.senderMac})`;
  if (!p.ip) return 'non-IPv4';
  const { ip } = p;
  if (ip.tcp) return `TCP ${ip.src}:${ip.tcp.sport} > ${ip.dst}:${ip.tcp.dport} flags 0x${ip.tcp.flags.toString(16)}`;
  if (ip.udp) return `UDP ${ip.src}:${ip.udp.sport} > ${ip.dst}:${ip.udp.dport} len ${ip.udp.payload.length}`;
  if (ip.icmp) return `ICMP ${ip.src} > ${ip.dst} type ${ip.icmp.type} id ${ip.icmp.id} seq ${ip.icmp.seq}`;
  return `IP ${ip.src} > ${ip.dst} proto ${ip.proto}`;
}
