import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dropNamespaceSchemas, freePort, testDatabaseUrl, uniqueNamespace, waitFor } from '@ferry/platform/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { portAnswers } from '../support/owned-servers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Running, not merely a zombie waiting for a reaper (in a container, PID 1 may never reap). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Every live process whose command line mentions `needle` (to find the nats-server behind its supervisor). */
function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(needle) && running(Number(entry))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/**
 * The live processes `l`'s run state (run.json) records — the launcher, its services and the nats supervisor —
 * each still running what it was recorded running (scripts/start.mjs matches them the same way), so a pid
 * reused since is never touched. The services' command lines do not mention the data directory.
 */
function recordedAlive(l: Launch): number[] {
  let state: ReturnType<Launch['runState']>;
  try {
    state = l.runState();
  } catch {
    return []; // no run state written yet
  }
  return [...Object.values(state.processes), { pid: state.pid, match: 'start.mjs' }]
    .filter((p) => p.pid && running(p.pid) && commandLine(p.pid).includes(p.match))
    .map((p) => p.pid);
}

/** SIGKILL to `pid`'s process group where it leads one (the launcher starts each child detached), else to it. */
function killHard(pid: number) {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
      return;
    } catch {
      // not a group leader, or gone meanwhile
    }
  }
}

interface Launch {
  child: ChildProcess;
  output: () => string;
  dataDir: string;
  ports: Record<'gateway' | 'gatewayHealth' | 'production' | 'transfer' | 'qa' | 'nats', number>;
  namespace: string;
  runState(): { pid: number; processes: Record<string, { pid: number; match: string }> };
}

const launches: Launch[] = [];

/**
 * `npm start` as a user runs it (scripts/start.mjs), on its own data directory, namespace and ports,
 * with NATS pointed at a free port so that it starts a nats-server of its own: the server it must not
 * leave behind. Waits for `Ferry is up.` unless `untilUp` is false; `env` adds to the environment.
 */
async function launch(options: { env?: Record<string, string>; untilUp?: boolean } = {}): Promise<Launch> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'ferry-launcher-'));
  const ports = {
    gateway: await freePort(),
    gatewayHealth: await freePort(),
    production: await freePort(),
    transfer: await freePort(),
    qa: await freePort(),
    nats: await freePort(),
  };
  const namespace = uniqueNamespace();
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts/start.mjs')], {
    cwd: ROOT,
    env: {
      ...process.env,
      NO_COLOR: '1',
      FERRY_DATA_DIR: dataDir,
      FERRY_NAMESPACE: namespace,
      DATABASE_URL: testDatabaseUrl(),
      NATS_URL: `nats://127.0.0.1:${ports.nats}`,
      GATEWAY_PORT: String(ports.gateway),
      GATEWAY_HEALTH_PORT: String(ports.gatewayHealth),
      PRODUCTION_HEALTH_PORT: String(ports.production),
      TRANSFER_HEALTH_PORT: String(ports.transfer),
      QA_HEALTH_PORT: String(ports.qa),
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const l: Launch = {
    child,
    output: () => out,
    dataDir,
    ports,
    namespace,
    runState: () => JSON.parse(readFileSync(path.join(dataDir, 'run.json'), 'utf8')),
  };
  launches.push(l);
  if (options.untilUp === false) return l;
  await waitFor(() => out.includes('Ferry is up.') || child.exitCode !== null, {
    timeoutMs: 90_000,
    what: 'npm start to bring the system up',
  });
  if (!out.includes('Ferry is up.')) throw new Error(`npm start failed:\n${out}`);
  return l;
}

/** Every process a launch started: the recorded services (and nats supervisor), and the nats-server under it. */
function startedBy(l: Launch): number[] {
  const recorded = Object.values(l.runState().processes).map((p) => p.pid);
  const natsServers = pidsMentioning(path.join(l.dataDir, 'nats')).filter((p) => !recorded.includes(p));
  return [...recorded, ...natsServers];
}

/** Sends `signal` to the launcher and waits for it to exit; a launcher that hangs fails here. */
async function stopLauncher(l: Launch, signal: NodeJS.Signals) {
  const exited = new Promise<number | null>((r) => l.child.once('exit', (code) => r(code)));
  l.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the launcher did not exit within 60 s of ${signal}`)), 60_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function readyz(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) })).status;
  } catch {
    return 0;
  }
}

describe('the launcher (npm start) supervises what it starts', () => {
  afterEach(async () => {
    // Whatever a failed test left: the launcher stops everything on SIGTERM.
    for (const l of launches) {
      if (l.child.exitCode === null && l.child.signalCode === null) {
        l.child.kill('SIGTERM');
        await new Promise((r) => l.child.once('exit', r));
      }
    }
  });
  afterAll(async () => {
    for (const l of launches.splice(0)) {
      // Whatever is still running of it, a test that failed half-way included: the services and the nats
      // supervisor recorded in run.json, and the nats-server (whose command line names the data directory).
      for (const pid of new Set([...recordedAlive(l), ...pidsMentioning(l.dataDir)])) killHard(pid);
      await dropNamespaceSchemas(testDatabaseUrl(), l.namespace);
      await rm(l.dataDir, { recursive: true, force: true });
    }
  });

  it('restarts a service killed under it, which is ready again without anyone acting', async () => {
    const l = await launch();
    const before = l.runState().processes.production!.pid;
    process.kill(before, 'SIGKILL');
    await waitFor(() => !running(before), { what: 'the killed service to be gone' });
    const after = await waitFor(
      () => {
        const pid = l.runState().processes.production?.pid;
        return pid !== undefined && pid !== before && running(pid) && pid;
      },
      { timeoutMs: 20_000, what: 'a new production process' },
    );
    await waitFor(async () => (await readyz(l.ports.production)) === 200, {
      timeoutMs: 30_000,
      what: 'the restarted production to be ready',
    });
    // The system as a whole is ready again: the gateway sees production answer.
    await waitFor(async () => (await readyz(l.ports.gateway)) === 200, { timeoutMs: 15_000, what: 'gateway ready' });
    expect(after).not.toBe(before);
    expect(l.output()).toMatch(/production\] exited unexpectedly \(SIGKILL\)/);
    expect(l.output()).toMatch(/restarting production in 1 s/);
    expect(l.child.exitCode).toBeNull();
  });

  it('leaves no service or server behind when it is killed with SIGKILL', async () => {
    const l = await launch();
    const state = l.runState();
    const pids = Object.values(state.processes).map((p) => p.pid);
    // The nats-server itself runs under a supervisor (the recorded pid); find the server too.
    const natsServers = pidsMentioning(path.join(l.dataDir, 'nats')).filter((p) => !pids.includes(p));
    expect(natsServers.length).toBeGreaterThan(0);
    expect(await portAnswers(l.ports.nats)).toBe(true);
    for (const pid of [...pids, ...natsServers]) expect(running(pid)).toBe(true);

    process.kill(state.pid, 'SIGKILL');
    await waitFor(() => [...pids, ...natsServers].every((pid) => !running(pid)), {
      timeoutMs: 10_000,
      what: `every process npm start started to stop (${[...pids, ...natsServers].filter(running).join(', ')} still running)`,
    });
    for (const port of Object.values(l.ports)) expect(await portAnswers(port)).toBe(false);
  });
  it('stops everything it started on Ctrl-C (SIGINT): no service, no server, no port left', async () => {
    const l = await launch();
    const pids = startedBy(l);
    expect(pids.length).toBeGreaterThan(4); // four services, the nats supervisor and its server
    for (const pid of pids) expect(running(pid)).toBe(true);
    for (const port of Object.values(l.ports)) expect(await portAnswers(port)).toBe(true);

    expect(await stopLauncher(l, 'SIGINT')).toBe(0);
    // The launcher waits for what it stops: by the time it has exited, everything is gone.
    expect(pids.filter(running)).toEqual([]);
    for (const port of Object.values(l.ports)) expect(await portAnswers(port)).toBe(false);
    expect(l.output()).toMatch(/SIGINT received/);
    expect(l.output()).toMatch(/\[ferry\] stopped$/m);
    expect(l.output()).not.toMatch(/did not stop within|killing it/);
  }, 120_000);

  it('gives up loudly on a service that crashes at once, at its 5th crash, and keeps the rest running', async () => {
    // A configuration only qa reads, and refuses: qa exits at boot, every time.
    const l = await launch({ env: { QA_CONCURRENCY: '0' }, untilUp: false });
    await waitFor(() => l.output().includes('GIVING UP on qa') || l.child.exitCode !== null, {
      timeoutMs: 90_000,
      what: 'the launcher to give up on qa',
    });
    const out = l.output();
    expect(out).toMatch(/GIVING UP on qa: it crashed 5 times within a minute/);
    // Five crashes, four restarts with the documented backoff, and none after the fifth.
    expect(out.match(/\[qa\]\s+exited unexpectedly \(exit code 1\)/g)).toHaveLength(5);
    expect([...out.matchAll(/restarting qa in (\d+) s/g)].map((m) => Number(m[1]))).toEqual([1, 2, 4, 8]);
    expect(out.slice(out.indexOf('GIVING UP on qa'))).not.toMatch(/restarting qa/);
    // Loud: its own words on why it cannot start are among the last lines shown.
    expect(out).toMatch(/invalid configuration: QA_CONCURRENCY/);
    const { processes } = l.runState();
    expect(running(processes.qa!.pid)).toBe(false);
    expect(l.child.exitCode).toBeNull();
    for (const name of ['production', 'transfer', 'gateway']) expect(running(processes[name]!.pid), name).toBe(true);
    await waitFor(async () => (await readyz(l.ports.production)) === 200, {
      timeoutMs: 30_000,
      what: 'production to be ready without qa',
    });

    // Ctrl-C still stops the rest.
    const pids = startedBy(l);
    await stopLauncher(l, 'SIGINT');
    expect(pids.filter(running)).toEqual([]);
    for (const port of Object.values(l.ports)) expect(await portAnswers(port)).toBe(false);
  }, 150_000);
});
