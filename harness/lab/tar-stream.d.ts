// The part of tar-stream 2 (no bundled types, no @types package installed) that payload.ts uses.
declare module 'tar-stream' {
  import type { Readable, Writable } from 'node:stream';

  export interface Headers {
    name: string;
    size?: number;
    mode?: number;
    mtime?: Date;
    type?:
      | 'file'
      | 'directory'
      | 'link'
      | 'symlink'
      | 'character-device'
      | 'block-device'
      | 'fifo'
      | 'contiguous-file'
      | 'pax-header'
      | 'pax-global-header'
      | 'gnu-long-link-path'
      | 'gnu-long-path'
      | null;
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

  export interface Extract extends Writable {
    on(event: 'entry', listener: (headers: Headers, stream: Readable, next: () => void) => void): this;
    on(event: 'finish', listener: () => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
  }

  export function extract(): Extract;
}
