/**
 * Newline-delimited text from a byte stream (a watch answer: one JSON event per line).
 *
 * A large object (a 200 KiB ConfigMap) arrives in many chunks: they are kept as they come and only
 * the new chunk is searched for the end of the line, so a line costs one pass over its bytes, not
 * one pass per chunk; bytes are decoded once the line is whole, so a character cut between two
 * chunks is decoded whole. Lines are trimmed; empty lines are skipped.
 */
export class LineDecoder {
  private parts: Buffer[] = [];

  /** The complete lines that `chunk` ends. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let rest = chunk;
    let nl: number;
    while ((nl = rest.indexOf(0x0a)) >= 0) {
      this.parts.push(rest.subarray(0, nl));
      const line = (this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts)).toString('utf8').trim();
      this.parts = [];
      rest = rest.subarray(nl + 1);
      if (line) lines.push(line);
    }
    if (rest.length > 0) this.parts.push(rest);
    return lines;
  }

  /** Bytes received after the last newline. */
  get pendingBytes(): number {
    return this.parts.reduce((n, b) => n + b.length, 0);
  }
}
