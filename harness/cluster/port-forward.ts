/**
 * A forward from 127.0.0.1 on the host to a TCP port inside a lab container, through the Docker API
 * only (like `kubectl port-forward`): a host TCP server, and ONE docker exec per forward with
 * hijacked stdin/stdout running harness/inlab/tunnel.js, which carries every connection as a
 * numbered stream (harness/inlab/tunnel-frames.ts) and connects each to the target inside the
 * container. No process per connection; no host route, interface or firewall rule is involved.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { docker } from '../docker/client.js';
import { inLabProgram } from '../util/paths.js';
import { LabError } from '../util/errors.js';
import { FRAME, FrameReader, encodeFrame } from '../inlab/tunnel-frames.js';

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
  private readonly sockets = new Map<number, Socket>();
  private tunnel: Promise<Tunnel> | undefined;
  private nextId = 1;
  /** connections accepted so far */
  connections = 0;
  /** connections that failed (tunnel could not start, or the target refused) */
  failures = 0;
  /** tunnels started (one unless the container restarted) */
  tunnels = 0;

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

  private fail(why: string): void {
    this.failures++;
    this.opts.log?.(`forward to ${this.opts.container}:${this.opts.targetPort}: ${why}`);
  }

  /** The one tunnel process of this forward (harness/inlab/tunnel.ts), started on first use and again after it ended. */
  private openTunnel(): Promise<Tunnel> {
    if (this.tunnel) return this.tunnel;
    const t = (async (): Promise<Tunnel> => {
      const exec = await this.container.exec({
        Cmd: ['node', inLabProgram('harness/inlab/tunnel.js'), this.opts.targetHost ?? '127.0.0.1', String(this.opts.targetPort)],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      });
      const stream = (await exec.start({ hijack: true, stdin: true })) as unknown as Duplex;
      this.tunnels++;
      const out = new PassThrough();
      const err = new PassThrough();
      let errText = '';
      err.on('data', (b: Buffer) => (errText = (errText + b.toString('utf8')).slice(-2000)));
      this.container.modem.demuxStream(stream, out, err);
      const reader = new FrameReader((type, id, payload) => {
        const sock = this.sockets.get(id);
        if (!sock) return;
        if (type === FRAME.DATA) {
          // never pause the shared tunnel for one slow client (every other stream would wait, and
          // for good if that client went away before 'drain'): its socket buffers what it is sent
          sock.write(payload);
        } else if (type === FRAME.END) sock.end();
        else if (type === FRAME.CLOSE) {
          this.sockets.delete(id);
          if (payload.length) this.fail(payload.toString('utf8'));
          if (!sock.writableEnded) sock.end();
          sock.destroySoon();
        }
      });
      out.on('data', (b: Buffer) => reader.push(b));
      const ended = (): void => {
        if (this.tunnel === t) this.tunnel = undefined;
        if (errText.trim()) this.opts.log?.(`forward tunnel to ${this.opts.container}: ${errText.trim()}`);
        for (const [id, sock] of this.sockets) {
          if (tunnelOf.get(sock) !== tun) continue;
          this.sockets.delete(id);
          sock.destroy();
        }
      };
      stream.on('end', ended);
      stream.on('close', ended);
      stream.on('error', ended);
      // the tunnel never keeps the process alive on its own
      ((stream as unknown as { socket?: { unref?: () => void } }).socket ?? (stream as unknown as { unref?: () => void })).unref?.();
      const tun: Tunnel = { write: (type, id, payload) => stream.write(encodeFrame(type, id, payload)), stream, drain: (cb) => stream.once('drain', cb) };
      return tun;
    })();
    this.tunnel = t;
    t.catch(() => {
      if (this.tunnel === t) this.tunnel = undefined;
    });
    return t;
  }

  private accept(socket: Socket): void {
    this.connections++;
    const id = this.nextId++;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.pause();
    this.openTunnel().then(
      (tun) => {
        if (socket.destroyed) return;
        if (tun.stream.destroyed) {
          this.fail('the tunnel ended before the connection could be opened');
          socket.destroy();
          return;
        }
        tunnelOf.set(socket, tun);
        this.sockets.set(id, socket);
        tun.write(FRAME.OPEN, id);
        socket.on('data', (b: Buffer) => {
          if (!tun.write(FRAME.DATA, id, b)) {
            socket.pause();
            tun.drain(() => socket.resume());
          }
        });
        // the client's FIN half-closes the stream in the lab
        socket.on('end', () => tun.write(FRAME.END, id));
        socket.on('close', () => {
          if (this.sockets.get(id) === socket) {
            this.sockets.delete(id);
            tun.write(FRAME.CLOSE, id);
          }
        });
        socket.resume();
      },
      (e: unknown) => {
        this.fail((e as Error).message);
        socket.destroy();
      },
    );
  }

  async close(): Promise<void> {
    for (const s of this.sockets.values()) s.destroy();
    this.sockets.clear();
    const t = this.tunnel;
    this.tunnel = undefined;
    if (t) await t.then((x) => x.stream.destroy()).catch(() => undefined);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface Tunnel {
  write(type: number, id: number, payload?: Buffer): boolean;
  drain(cb: () => void): void;
  stream: Duplex;
}

const tunnelOf = new WeakMap<Socket, Tunnel>();

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
