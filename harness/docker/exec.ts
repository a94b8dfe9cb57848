/**
 * Runs a command inside a container through the Docker API and collects its output and exit code.
 */
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { CommandError, TimeoutError } from '../util/errors.js';

/** Options of a command run in a lab container (lab.exec, a handle's exec). */
export interface ExecOptions {
  /** Throw CommandError on a non-zero exit (default true). */
  check?: boolean;
  /** Throw TimeoutError when it has not finished after this long (ms; default: no limit). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Written to the command's standard input, then closed. */
  stdin?: string;
  /** For messages: which lab container this is. */
  where?: string;
}

/** A finished command: its exit code and output. */
export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` in `container` and waits for it (see ExecOptions). */
export async function execIn(container: Docker.Container, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
  const where = options.where ?? container.id.slice(0, 12);
  const exec = await container.exec({
    Cmd: cmd,
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: options.stdin !== undefined,
    Env: options.env ? Object.entries(options.env).map(([k, v]) => `${k}=${v}`) : undefined,
  });
  const stream = await exec.start({ hijack: true, stdin: options.stdin !== undefined });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  container.modem.demuxStream(stream, stdout, stderr);
  if (options.stdin !== undefined) {
    stream.write(options.stdin);
    (stream as unknown as { end(): void }).end();
  }
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    if (options.timeoutMs) {
      await Promise.race([
        ended,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new TimeoutError(`${cmd.join(' ')} in ${where}`, options.timeoutMs!)), options.timeoutMs);
        }),
      ]);
    } else {
      await ended;
    }
  } finally {
    if (timer) clearTimeout(timer);
  }
  // The stream may end a moment before the engine records the exit code.
  let info = await exec.inspect();
  for (let i = 0; info.Running && i < 100; i++) {
    await new Promise((r) => setTimeout(r, 10));
    info = await exec.inspect();
  }
  const result = {
    exitCode: info.ExitCode ?? -1,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
  };
  if ((options.check ?? true) && result.exitCode !== 0) {
    throw new CommandError(where, cmd, result.exitCode, result.stdout, result.stderr);
  }
  return result;
}

/** Starts a command in the background inside the container (no output collected). */
export async function execDetached(container: Docker.Container, cmd: string[], env?: Record<string, string>): Promise<void> {
  const exec = await container.exec({
    Cmd: cmd,
    AttachStdout: false,
    AttachStderr: false,
    Env: env ? Object.entries(env).map(([k, v]) => `${k}=${v}`) : undefined,
  });
  const response = (await exec.start({ Detach: true })) as unknown as { resume?: () => void } | undefined;
  // The (empty) response is a stream: drain it, or its socket stays open and keeps the process alive.
  response?.resume?.();
}
