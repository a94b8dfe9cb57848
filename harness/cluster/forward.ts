/**
 * A forward from 127.0.0.1 on the host to a TCP port inside a lab container, through the Docker API
 * only (like `kubectl port-forward`): a host TCP server, and per accepted connection one docker exec
 * into the container with hijacked stdin/stdout running harness/inlab/tcp-pipe.js, which connects to
 * the target inside the container. No host route, interface or firewall rule is involved.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { docker } from '../docker/client.js';
import { inLabProgram } from '../util/paths.js';
import { LabError } from '../util/errors.js';

export interface ForwardOptions {
  /** container name (egl-<lab>-<key>) */
  container: string;
  /** address and port inside the container */
  targetHost?: string;
  targetPort: number;
  /** host port on 127.0.0.1; 0 (default) picks a free one */
  port?: number;
  /** one line per connection problem (default: none) */
  log?: (line: string) => void;
}

export class Forward {
  private readonly sockets = new Set<Socket>();
  private readonly streams = new Set<Duplex>();
  /** connections accepted so far */
  connections = 0;
  /** connections whose exec failed or whose pipe reported an error */
  failures = 0;

  private constructor(
    private readonly server: Server,
    private readonly container: Docker.Container,
    private readonly opts: ForwardOptions,
  ) {}

  static async start(opts: ForwardOptions): Promise<Forward> {
    const server = createServer({ noDelay: true });
    const f = new Forward(server, docker().getContainer(opts.container), opts);
    server.on('connection', (s) => f.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: opts.port ?? 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return f;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** https://127.0.0.1:<port> */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    socket.pause();
    this.pipe(socket).catch((e: unknown) => {
      this.failures++;
      this.opts.log?.(`forward to ${this.opts.container}:${this.opts.targetPort}: ${(e as Error).message}`);
      socket.destroy();
    });
  }

  private async pipe(socket: Socket): Promise<void> {
    const exec = await this.container.exec({
      Cmd: ['node', inLabProgram('harness/inlab/tcp-pipe.js'), this.opts.targetHost ?? '127.0.0.1', String(this.opts.targetPort)],
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const stream = (await exec.start({ hijack: true, stdin: true })) as unknown as Duplex;
    if (socket.destroyed) {
      stream.destroy();
      return;
    }
    this.streams.add(stream);
    const out = new PassThrough();
    const err = new PassThrough();
    let errText = '';
    err.on('data', (b: Buffer) => (errText += b.toString('utf8')));
    this.container.modem.demuxStream(stream, out, err);
    out.pipe(socket, { end: false });
    const finish = (): void => {
      this.streams.delete(stream);
      if (errText.trim()) {
        this.failures++;
        this.opts.log?.(`forward to ${this.opts.container}:${this.opts.targetPort}: ${errText.trim()}`);
      }
      // Everything the container sent has been written; then end the client's side.
      out.end();
      out.once('end', () => socket.end());
    };
    stream.on('end', finish);
    stream.on('close', () => {
      this.streams.delete(stream);
      if (!socket.destroyed && !socket.writableEnded) socket.end();
    });
    stream.on('error', () => socket.destroy());
    // Client -> container; the client's FIN half-closes the exec's stdin (the pipe then half-closes).
    socket.on('data', (b: Buffer) => {
      if (!stream.write(b)) {
        socket.pause();
        stream.once('drain', () => socket.resume());
      }
    });
    socket.on('end', () => stream.end());
    socket.on('close', () => {
      if (!stream.destroyed) stream.destroy();
    });
    socket.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    for (const s of this.streams) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export async function portAccepts(port: number, timeoutMs = 1000): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export function assertPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new LabError(`bad port ${port}`);
}
