// The part of tar-stream 2 (no bundled types, no @types package installed) that payload.ts uses.
declare module 'tar-stream' {
  import type { Readable } from 'node:stream';

  export interface Headers {
    name: string;
    size?: number;
    mode?: number;
    mtime?: Date;
    type?: 'file' | 'directory';
    uid?: number;
    gid?: number;
    uname?: string;
    gname?: string;
  }

  export interface Pack extends Readable {
    entry(headers: Headers, buffer?: Buffer | string, callback?: (error?: Error | null) => void): unknown;
    finalize(): void;
  }

  export function pack(): Pack;
}
