import net from 'node:net';

/**
 * A TCP proxy in front of the database, to make its faults real:
 * - `cut()` drops every connection and refuses new ones, as a database that went away does;
 *   `restore()` lets connections through again.
 * - `blackHole()` stops forwarding anything on the open connections without closing them, and
 *   accepts new ones without forwarding them either, as when a middlebox loses its state; `heal()`
 *   lets new connections through again, while those opened before stay silent for good.
 * - `cutOnAnswer(pattern)` cuts the next connection on which the server sends `pattern`, before
 *   the client sees it: a crash between a commit and its answer.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private blackHoled = false;
  private readonly silenced = new Set<net.Socket>();
  private cutPattern: Buffer | undefined;
  private onCut: (() => void) | undefined;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(port = 0): Promise<this> {
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    if (this.blackHoled) {
      // Accepted, then never answered.
      this.silenced.add(client);
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    this.sockets.add(upstream);
    upstream.on('close', () => {
      this.sockets.delete(upstream);
      if (!this.silenced.has(client)) client.destroy();
    });
    client.on('close', () => {
      if (!this.silenced.has(client)) upstream.destroy();
    });
    upstream.on('error', () => upstream.destroy());
    client.on('data', (chunk: Buffer) => {
      if (!this.silenced.has(client)) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.silenced.has(client)) return;
      if (this.cutPattern && chunk.includes(this.cutPattern)) {
        this.cutPattern = undefined;
        client.destroy();
        upstream.destroy();
        this.onCut?.();
        return;
      }
      client.write(chunk);
    });
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  async restore(): Promise<void> {
    await this.start(this.port);
  }

  /** Every open connection goes silent (nothing forwarded, nothing closed), and so do new ones. */
  blackHole(): void {
    this.blackHoled = true;
    for (const socket of this.sockets) this.silenced.add(socket);
  }

  /** New connections are forwarded again; the silenced ones stay silent. */
  heal(): void {
    this.blackHoled = false;
  }

  /** Resolves once a connection was cut on seeing `pattern` from the server. */
  cutOnAnswer(pattern: Buffer): Promise<void> {
    this.cutPattern = pattern;
    return new Promise((resolve) => {
      this.onCut = resolve;
    });
  }
}

/** PostgreSQL's answer to a COMMIT (CommandComplete "COMMIT"). */
export const POSTGRES_COMMIT_ANSWER = Buffer.from([0x43, 0, 0, 0, 11, ...Buffer.from('COMMIT\0')]);
