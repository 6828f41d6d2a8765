import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from '@ferry/platform/testing';

const ROOT = path.resolve(import.meta.dirname, '../..');

export function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * A nats-server with JetStream that a test owns: it may stop and restart it (same port, same store)
 * without touching the shared server other test files use.
 */
export class OwnedNats {
  private child?: ChildProcess;
  private log = '';

  private constructor(
    readonly port: number,
    private readonly storeDir: string,
  ) {}

  static async start(): Promise<OwnedNats> {
    const nats = new OwnedNats(await freePort(), await mkdtemp(path.join(tmpdir(), 'ferry-nats-')));
    await nats.restart();
    return nats;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    const binary = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'].find(existsSync);
    if (!binary) throw new Error('no nats-server binary found');
    this.child = spawn(binary, ['-js', '-sd', this.storeDir, '-a', '127.0.0.1', '-p', String(this.port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    await waitFor(() => portAnswers(this.port), {
      timeoutMs: 15_000,
      what: `nats-server on ${this.port}: ${this.log}`,
    });
  }

  async ensureRunning(): Promise<void> {
    if (!this.child) await this.restart();
  }

  /** Stops the server (SIGKILL by default: an outage, not a maintenance). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.child) return;
    this.child.kill(signal);
    await exited(this.child);
    this.child = undefined;
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}

/**
 * A PostgreSQL a test owns (the embedded server `npm start` uses, run by scripts/lib/embedded-postgres.mjs):
 * it may stop and restart it without touching the shared server.
 */
export class OwnedPostgres {
  private child?: ChildProcess;
  private static readonly PASSWORD = 'owned';

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async start(): Promise<OwnedPostgres> {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-pg-'));
    // As root the server runs as the `postgres` user, which must reach the directory mkdtemp made 0700.
    await chmod(dir, 0o777);
    const pg = new OwnedPostgres(await freePort(), dir);
    await pg.restart();
    return pg;
  }

  get url(): string {
    return `postgres://postgres:${OwnedPostgres.PASSWORD}@127.0.0.1:${this.port}/postgres`;
  }

  async restart(): Promise<void> {
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts/lib/embedded-postgres.mjs')], {
      env: {
        ...process.env,
        FERRY_PG_DIR: path.join(this.dir, 'data'),
        FERRY_PG_PORT: String(this.port),
        FERRY_PG_PASSWORD: OwnedPostgres.PASSWORD,
        FERRY_PG_LOG: path.join(this.dir, 'postgres.log'),
      },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.child = child;
    const outcome = await new Promise<{ type: string; message?: string }>((resolve) => {
      child.once('message', (m) => resolve(m as { type: string }));
      child.once('exit', (code) => resolve({ type: 'error', message: `exited with ${code}` }));
    });
    if (outcome.type !== 'ready') throw new Error(`embedded postgres did not start: ${outcome.message}`);
  }

  async ensureRunning(): Promise<void> {
    if (!this.child) await this.restart();
  }

  /** Stops the server (the helper does a fast shutdown: connections are terminated). */
  async stop(): Promise<void> {
    if (!this.child) return;
    this.child.kill('SIGTERM');
    await exited(this.child);
    this.child = undefined;
    await waitFor(async () => !(await portAnswers(this.port)), { what: 'postgres to stop listening' });
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
