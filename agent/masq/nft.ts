/**
 * The only place that runs `nft`. Kept behind an interface so unit tests use a fake.
 * No shell: execFile with an argument vector, the ruleset on stdin.
 */
import { execFile } from 'node:child_process';
import type { TableRef } from './render.js';

export interface NftRunner {
  /** Apply a ruleset file as one transaction (`nft -f -`). Rejects with nft's stderr. */
  apply(ruleset: string): Promise<void>;
  /**
   * `nft -s list table <family> <name>` (stateless: no counters, so the text is stable).
   * Resolves null when the table does not exist.
   */
  list(table: TableRef): Promise<string | null>;
}

export class NftError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly code: number | string | null,
  ) {
    super(message);
    this.name = 'NftError';
  }
}

export interface ExecNftOptions {
  /** Path of the nft binary (default "nft", resolved through PATH). */
  nftPath?: string;
  timeoutMs?: number;
}

function run(nft: string, args: string[], stdin: string | null, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      nft,
      args,
      { maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          reject(new NftError(`nft ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`, String(stderr), code));
          return;
        }
        resolve(String(stdout));
      },
    );
    if (stdin !== null) {
      child.stdin?.on('error', () => {
        /* reported through the exit status */
      });
      child.stdin?.end(stdin);
    }
  });
}

export class ExecNftRunner implements NftRunner {
  private readonly nft: string;
  private readonly timeoutMs: number;

  constructor(opts: ExecNftOptions = {}) {
    this.nft = opts.nftPath ?? 'nft';
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async apply(ruleset: string): Promise<void> {
    await run(this.nft, ['-f', '-'], ruleset, this.timeoutMs);
  }

  async list(table: TableRef): Promise<string | null> {
    try {
      return await run(this.nft, ['-s', 'list', 'table', table.family, table.name], null, this.timeoutMs);
    } catch (e) {
      if (e instanceof NftError && /No such file or directory/.test(e.stderr)) return null;
      throw e;
    }
  }
}
