/**
 * Frames of the forward tunnel (tunnel.ts in the lab, harness/cluster/port-forward.ts on the host):
 * type (1 byte), stream id (uint32 BE), payload length (uint32 BE), payload. Pure; Node 18.
 */
export const FRAME = { OPEN: 1, DATA: 2, END: 3, CLOSE: 4 } as const;

const HEADER = 9;

export function encodeFrame(type: number, id: number, payload?: Buffer | string): Buffer {
  const body = payload === undefined ? Buffer.alloc(0) : typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt8(type, 0);
  h.writeUInt32BE(id >>> 0, 1);
  h.writeUInt32BE(body.length, 5);
  return Buffer.concat([h, body]);
}

/** Reassembles frames from arbitrary chunks. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (type: number, id: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < HEADER) return;
      const len = this.buf.readUInt32BE(5);
      if (this.buf.length < HEADER + len) return;
      const type = this.buf.readUInt8(0);
      const id = this.buf.readUInt32BE(1);
      const payload = this.buf.subarray(HEADER, HEADER + len);
      this.buf = this.buf.subarray(HEADER + len);
      this.onFrame(type, id, payload);
    }
  }
}
