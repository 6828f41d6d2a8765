import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Role } from '@ferry/contracts';
import { mintAccessToken } from '@ferry/platform';
import { TestInfra, type TestInfraOptions } from '@ferry/platform/testing';
import { afterAll, beforeAll } from 'vitest';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');

export type ServiceName = 'production' | 'transfer' | 'qa' | 'gateway';
const ALL: ServiceName[] = ['production', 'transfer', 'qa', 'gateway'];

export interface ServiceProcess {
  name: ServiceName;
  child: ChildProcess;
  /** Health port for production/transfer/qa; HTTP port for the gateway. */
  port: number;
  /** The ops port (/healthz, /readyz, /metrics); for production/transfer/qa the same as `port`. */
  healthPort: number;
  lines: Record<string, unknown>[];
  raw: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The process's exit, or an error once `ms` pass without one (a fault that never fired must not hang a test). */
export function exitWithin(
  proc: ServiceProcess,
  ms = 20_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    proc.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${proc.name} still running after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The built services as real processes on a namespace of their own, set up with the real
 * `ferry setup` command. For end-to-end tests and for HTTP tests that need real services behind NATS.
 */
export class System {
  readonly processes = new Map<ServiceName, ServiceProcess>();
  /** Every process ever spawned, so shutdown() can never leave one behind. */
  private readonly spawned: ServiceProcess[] = [];
  readonly jwtSecret = `test-secret-${'x'.repeat(40)}`;
  readonly uploadSigningSecret = `upload-secret-${'y'.repeat(40)}`;
  /** The local blob store every service of this system shares (transfer writes, the gateway streams parts in, qa reads). */
  readonly blobDir: string;

  private constructor(readonly infra: TestInfra) {
    this.blobDir = mkdtempSync(path.join(tmpdir(), `ferry-blobs-${infra.ns.prefix}-`));
  }

  static async create(options: Pick<TestInfraOptions, 'databaseUrl' | 'natsUrl'> = {}): Promise<System> {
    const infra = await TestInfra.create({ ...options, provision: false });
    const system = new System(infra);
    await run(process.execPath, [path.join(ROOT, 'packages/cli/dist/main.js'), 'setup'], {
      env: { ...process.env, ...infra.env() },
    });
    return system;
  }

  /** Starts services and waits until each logs `ready` (or, with waitForReady false, until it listens). */
  async start(
    names: readonly ServiceName[] = ALL,
    options: { env?: Record<string, string>; waitForReady?: boolean; nodeArgs?: string[] } = {},
  ): Promise<void> {
    await Promise.all(
      names.map((n) => this.spawn(n, options.env ?? {}, options.waitForReady ?? true, true, options.nodeArgs)),
    );
  }

  /** One more process of `name` (another replica on the same namespace), stopped by shutdown(). */
  async startReplica(name: ServiceName, env: Record<string, string> = {}): Promise<ServiceProcess> {
    return this.spawn(name, env, true, false);
  }

  private spawn(
    name: ServiceName,
    env: Record<string, string>,
    waitForReady: boolean,
    primary = true,
    nodeArgs: string[] = [],
  ): Promise<ServiceProcess> {
    const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, `services/${name}/dist/main.js`)], {
      env: {
        ...process.env,
        ...this.infra.env(),
        LOG_LEVEL: 'debug',
        BLOB_DIR: this.blobDir,
        UPLOAD_SIGNING_SECRET: this.uploadSigningSecret,
        ...(name === 'gateway'
          ? {
              PORT: '0',
              HOST: '127.0.0.1',
              HEALTH_PORT: '0',
              HEALTH_HOST: '127.0.0.1',
              FERRY_JWT_SECRET: this.jwtSecret,
            }
          : { HEALTH_PORT: '0', HEALTH_HOST: '127.0.0.1' }),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc: ServiceProcess = {
      name,
      child,
      port: 0,
      healthPort: 0,
      lines: [],
      raw: [],
      exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    };
    if (primary) this.processes.set(name, proc);
    this.spawned.push(proc);
    let buffer = '';
    const waiters: (() => void)[] = [];
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        proc.raw.push(line);
        try {
          const json = JSON.parse(line) as Record<string, unknown>;
          proc.lines.push(json);
          if (json.msg === 'health endpoint listening' && typeof json.port === 'number') {
            proc.healthPort = json.port;
            if (name !== 'gateway') proc.port = json.port;
          }
          if (json.msg === 'gateway listening' && typeof json.port === 'number') proc.port = json.port;
        } catch {
          // not a log line (e.g. a fault-injection notice on stderr)
        }
        for (const w of waiters.splice(0)) w();
        nl = buffer.indexOf('\n');
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name} did not start in 20 s:\n${proc.raw.join('\n')}`)),
        20_000,
      );
      const check = () => {
        const done = waitForReady ? proc.lines.some((l) => l.msg === 'ready') && proc.port > 0 : proc.port > 0;
        if (done) {
          clearTimeout(timer);
          resolve(proc);
        } else waiters.push(check);
      };
      void proc.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        if (this.processes.get(name) === proc) this.processes.delete(name);
        reject(new Error(`${name} exited (${code ?? signal}) while starting:\n${proc.raw.join('\n')}`));
      });
      check();
    });
  }

  /** Every spawned process still alive, replicas included. */
  live(): ServiceProcess[] {
    return this.spawned.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  }

  get gatewayUrl(): string {
    return `http://127.0.0.1:${this.processes.get('gateway')!.port}`;
  }

  healthUrl(name: Exclude<ServiceName, 'gateway'>): string {
    return `http://127.0.0.1:${this.processes.get(name)!.port}`;
  }

  /** A client of the running gateway for `token`: `(method, path, body?, headers?) → { status, headers, body }`. */
  client(token: string) {
    return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${this.gatewayUrl}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as any) : undefined };
    };
  }

  token(org: string, role: Role = 'admin', sub = `${role}-test`): Promise<string> {
    return mintAccessToken({ secret: this.jwtSecret, org, role, sub });
  }

  async stop(name: ServiceName, signal: NodeJS.Signals = 'SIGTERM') {
    const proc = this.processes.get(name);
    if (!proc) return;
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 15_000);
    const result = await proc.exited;
    clearTimeout(timer);
    this.processes.delete(name);
    return result;
  }

  async shutdown(): Promise<void> {
    const alive = this.spawned.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
    for (const p of alive) p.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const p of alive) p.child.kill('SIGKILL');
    }, 15_000);
    await Promise.all(alive.map((p) => p.exited));
    clearTimeout(timer);
    this.processes.clear();
    await this.infra.cleanup();
    rmSync(this.blobDir, { recursive: true, force: true });
  }
}

/**
 * A System for one test file: boots `services` before the file's tests and shuts everything down
 * after. `get()` returns the running system, `api` calls the gateway as an operator of `org`.
 */
export function useSystem(services: readonly ServiceName[], org: string) {
  let system: System | undefined;
  let token = '';
  beforeAll(async () => {
    system = await System.create();
    await system.start(services);
    token = await system.token(org, 'operator');
  });
  afterAll(() => system?.shutdown());
  return {
    get: (): System => {
      if (!system) throw new Error('the system has not started');
      return system;
    },
    api: (...args: Parameters<ReturnType<System['client']>>) => system!.client(token)(...args),
  };
}
