#!/usr/bin/env node
// `npm start`: brings the whole system up on this machine (DESIGN §9). Reuses Postgres and NATS at
// DATABASE_URL / NATS_URL when they answer, otherwise starts local ones under .data/ (an embedded
// Postgres from the npm registry, a nats-server from the PATH); provisions streams and migrates every
// schema (`ferry setup`), starts the four services, waits for the gateway's /readyz and prints a demo
// token. Ctrl-C stops the services (they drain), then whatever this script started.
//
// Supervision: a service that crashes is restarted with backoff (1, 2, 4, 8 s), and given up on,
// loudly, at its 5th crash within a minute; the services and any server started here are tied to
// this process by IPC channels, so they stop by themselves even when this script is killed with SIGKILL.
//
// Options: --seed (also load demo data, and leave the demo device's token in .data/demo-device.json for
// `npm run demo:upload`). Environment: DATABASE_URL, NATS_URL, FERRY_NAMESPACE,
// LOG_LEVEL, LOG_FORMAT=json (raw log lines), FERRY_JWT_SECRET, FERRY_DATA_DIR (.data), GATEWAY_PORT
// (3000), GATEWAY_HEALTH_PORT (3104), PRODUCTION_HEALTH_PORT (3101), TRANSFER_HEALTH_PORT (3102),
// QA_HEALTH_PORT (3103).
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';

const root = path.resolve(import.meta.dirname, '..');
const dataDir = process.env.FERRY_DATA_DIR ? path.resolve(process.env.FERRY_DATA_DIR) : path.join(root, '.data');
/** How the data directory is named in messages: `.data` unless FERRY_DATA_DIR moved it. */
const shownData = path.relative(root, dataDir).startsWith('..') ? dataDir : path.relative(root, dataDir);
const cliMain = path.join(root, 'packages/cli/dist/main.js');
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

const SERVICES = [
  { name: 'production', portVar: 'PRODUCTION_HEALTH_PORT', defaultPort: 3101, childPortVar: 'HEALTH_PORT' },
  { name: 'transfer', portVar: 'TRANSFER_HEALTH_PORT', defaultPort: 3102, childPortVar: 'HEALTH_PORT' },
  { name: 'qa', portVar: 'QA_HEALTH_PORT', defaultPort: 3103, childPortVar: 'HEALTH_PORT' },
  {
    name: 'gateway',
    portVar: 'GATEWAY_PORT',
    defaultPort: 3000,
    childPortVar: 'PORT',
    // The gateway's ops port (/metrics is not served on the public API port).
    healthPortVar: 'GATEWAY_HEALTH_PORT',
    defaultHealthPort: 3104,
  },
];
/**
 * A crashed service is restarted after 1 s, 2 s, 4 s, 8 s (doubling from 1 s, at most
 * MAX_RESTART_DELAY_MS); its MAX_CRASHES-th crash within CRASH_WINDOW_MS is not restarted: it is
 * given up. docs/operations.md states these numbers; change both together.
 */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
const MAX_RESTART_DELAY_MS = 8_000;

// ---------------------------------------------------------------------------------------------- output

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const dim = paint('2');
const bold = paint('1');
const levelColor = { trace: paint('90'), debug: paint('36'), info: paint('32'), warn: paint('33') };
const nameColor = { production: paint('35'), transfer: paint('34'), qa: paint('36'), gateway: paint('32') };
const PINO_LEVELS = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const jsonLogs = process.env.LOG_FORMAT === 'json';
const nameWidth = 10;

function out(line) {
  process.stdout.write(`${line}\n`);
}

function say(message) {
  out(`${bold('[ferry]')} ${message}`);
}

function warn(message) {
  out(`${bold('[ferry]')} ${paint('33')('warning:')} ${message}`);
}

function tag(name) {
  const label = `[${name}]`.padEnd(nameWidth + 2);
  return (nameColor[name] ?? bold)(label);
}

/** One pino JSON line as `[name] level: message key=value`, or the line as it came when it is not JSON. */
function formatLogLine(name, line) {
  let record;
  if (line.startsWith('{')) {
    try {
      record = JSON.parse(line);
    } catch {
      // not JSON after all: printed as it is
    }
  }
  if (!record || typeof record !== 'object') return `${tag(name)} ${line}`;
  if (jsonLogs) return line;
  const { level, msg, err, time: _time, service: _service, pid: _pid, hostname: _hostname, ...rest } = record;
  const label = typeof level === 'number' ? (PINO_LEVELS[level] ?? String(level)) : String(level ?? 'info');
  const painted = (levelColor[label] ?? paint('31'))(label);
  let text = `${tag(name)} ${painted}: ${msg ?? ''}`;
  const extras = Object.entries(rest)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  if (extras) text += ` ${dim(extras.length > 300 ? `${extras.slice(0, 300)}…` : extras)}`;
  if (err && typeof err === 'object') {
    const pad = ' '.repeat(nameWidth + 3);
    const stack =
      label === 'error' || label === 'fatal'
        ? String(err.stack ?? '')
            .split('\n')
            .slice(1, 8)
        : [];
    text += `\n${pad}${err.type ?? 'Error'}: ${err.message ?? ''}`;
    for (const frame of stack) text += `\n${pad}${dim(frame.trim())}`;
  }
  return text;
}

process.stdout.on('error', () => undefined); // a closed pipe (`npm start | head`) must not crash the shutdown

// ----------------------------------------------------------------------------------- child processes

/** Every process this script started and still tracks, by name. */
const children = new Map();
let shuttingDown = false;

/**
 * Starts a child in its own process group, so Ctrl-C reaches only this script, which then stops the
 * children in order (services drain before Postgres and NATS go away). Output is prefixed with `name`.
 */
function startChild(name, command, args, { env = process.env, onStdoutLine, quiet = false, ipc = false } = {}) {
  const stdio = ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'];
  const child = spawn(command, args, { cwd: root, env, detached: true, stdio });
  const entry = { name, child, lines: [], exited: false };
  entry.exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      entry.exited = true;
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      entry.lines.push(err.message);
      entry.exited = true;
      resolve({ code: -1, signal: null });
    });
  });
  const remember = (line) => {
    entry.lines.push(line);
    if (entry.lines.length > 40) entry.lines.shift();
  };
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    remember(line);
    if (onStdoutLine) onStdoutLine(line);
    else if (!quiet) out(formatLogLine(name, line));
  });
  readline.createInterface({ input: child.stderr }).on('line', (line) => {
    remember(line);
    if (!quiet) out(`${tag(name)} ${line}`);
  });
  children.set(name, entry);
  return entry;
}

function signalChild(entry, signal) {
  if (entry.exited || !entry.child.pid) return;
  try {
    process.kill(-entry.child.pid, signal); // the whole group: a child's own children go too
  } catch {
    try {
      entry.child.kill(signal);
    } catch {
      // already gone
    }
  }
}

async function stopChild(entry, signal, timeoutMs) {
  if (entry.exited) return;
  signalChild(entry, signal);
  const timer = new Promise((resolve) => setTimeout(resolve, timeoutMs, 'timeout'));
  if ((await Promise.race([entry.exit, timer])) === 'timeout') {
    warn(`${entry.name} did not stop within ${timeoutMs / 1000} s; killing it`);
    signalChild(entry, 'SIGKILL');
    await entry.exit;
  }
}

/** Runs a `ferry` CLI command to completion; its output is shown prefixed unless captured. */
async function runCli(name, cliArgs, env, { capture = false } = {}) {
  let stdout = '';
  const entry = startChild(name, process.execPath, [cliMain, ...cliArgs], {
    env,
    onStdoutLine: capture
      ? (line) => {
          stdout += `${line}\n`;
        }
      : undefined,
  });
  const result = await entry.exit;
  children.delete(name);
  return { ...result, stdout, lines: entry.lines };
}

// ------------------------------------------------------------------------------------- state on disk

const runFile = path.join(dataDir, 'run.json');
const runState = { pid: process.pid, processes: {} };
let ownsRunFile = false;

function saveRunState() {
  writeFileSync(runFile, `${JSON.stringify(runState, null, 2)}\n`);
  ownsRunFile = true;
}

function record(name, pid, match) {
  runState.processes[name] = { pid, match };
  saveRunState();
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Refuses to run twice on one checkout, and stops what a run that was killed (SIGKILL, a closed
 * terminal) left behind: services and a nats-server recorded in .data/run.json, matched by command line
 * so that a reused pid is never touched. The embedded Postgres stops by itself when its parent dies.
 */
async function reclaimPreviousRun() {
  if (!existsSync(runFile)) return;
  let previous;
  try {
    previous = JSON.parse(readFileSync(runFile, 'utf8'));
  } catch {
    return;
  }
  if (previous.pid && previous.pid !== process.pid && alive(previous.pid)) {
    if (commandLine(previous.pid).includes('start.mjs')) {
      throw new StartError(`npm start is already running in this checkout (pid ${previous.pid}); stop it first.`);
    }
  }
  const leftovers = Object.entries(previous.processes ?? {}).filter(
    ([, p]) => p.pid && alive(p.pid) && p.match && commandLine(p.pid).includes(p.match),
  );
  for (const [name, p] of leftovers) {
    warn(`stopping ${name} (pid ${p.pid}) left running by an earlier npm start`);
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  for (let i = 0; i < 100 && leftovers.some(([, p]) => alive(p.pid)); i++) await sleep(100);
  for (const [, p] of leftovers) {
    if (alive(p.pid)) process.kill(p.pid, 'SIGKILL');
  }
}

/** A value generated once and kept in .data/, so restarts keep tokens and demo data valid. */
function persistent(file, generate) {
  const full = path.join(dataDir, file);
  if (existsSync(full)) {
    const value = readFileSync(full, 'utf8').trim();
    if (value) return value;
  }
  const value = generate();
  writeFileSync(full, `${value}\n`, { mode: 0o600 });
  return value;
}

// ------------------------------------------------------------------------------------------ network

function isLoopback(hostname) {
  return ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname) || hostname.startsWith('127.');
}

function listenOnce(port, host) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Free on every interface and on loopback (services listen on 0.0.0.0, clients use 127.0.0.1). */
async function portIsFree(port) {
  return (await listenOnce(port, undefined)) && (await listenOnce(port, '127.0.0.1'));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const claimedPorts = new Set();

/** `preferred` when it is free (and not already handed out), else any free port. */
async function choosePort(preferred) {
  if (preferred && !claimedPorts.has(preferred) && (await portIsFree(preferred))) {
    claimedPorts.add(preferred);
    return preferred;
  }
  let port;
  do port = await freePort();
  while (claimedPorts.has(port));
  claimedPorts.add(port);
  return port;
}

function redact(url) {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

// ----------------------------------------------------------------------------------------- postgres

class StartError extends Error {}

function loadPg() {
  // `pg` is a dependency of the workspace packages, not of the root; resolve it where they do.
  for (const from of ['packages/platform/package.json', 'services/production/package.json', 'package.json']) {
    try {
      return createRequire(path.join(root, from))('pg');
    } catch {
      // try the next place
    }
  }
  throw new StartError('cannot load the `pg` package: run `node scripts/bootstrap.mjs` first.');
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** ok | missing-database | down (nothing answers) | error (something answered and refused) */
async function probePostgres(pg, url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return { state: 'ok' };
  } catch (err) {
    if (err.code === '3D000') return { state: 'missing-database', error: err };
    if (UNREACHABLE.has(err.code) || /timeout/i.test(err.message)) return { state: 'down', error: err };
    return { state: 'error', error: err };
  } finally {
    client.end().catch(() => undefined);
  }
}

async function createDatabase(pg, url) {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1)) || 'postgres';
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const client = new pg.Client({ connectionString: maintenance.toString(), connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(`create database ${client.escapeIdentifier(name)}`);
    say(`created database ${name}`);
  } catch (err) {
    if (err.code !== '42P04') throw new StartError(`cannot create database ${name}: ${err.message}`); // 42P04: it exists
  } finally {
    client.end().catch(() => undefined);
  }
}

function tailOf(file, lines = 15) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function startEmbeddedPostgres(preferredPort) {
  const helper = path.join(root, 'scripts/lib/embedded-postgres.mjs');
  const pgDir = path.join(dataDir, 'postgres');
  const logFile = path.join(dataDir, 'postgres.log');
  const port = await choosePort(preferredPort);
  const password = 'postgres'; // loopback only, a development database
  say(
    `starting an embedded Postgres on 127.0.0.1:${port} (data in ${shownData}/postgres, log in ${shownData}/postgres.log)`,
  );
  const entry = startChild('postgres', process.execPath, [helper], {
    env: {
      ...process.env,
      FERRY_PG_DIR: pgDir,
      FERRY_PG_PORT: String(port),
      FERRY_PG_PASSWORD: password,
      FERRY_PG_LOG: logFile,
    },
    ipc: true,
    quiet: true, // its output is shown only if it fails
  });
  const outcome = await Promise.race([
    new Promise((resolve) => entry.child.on('message', resolve)),
    entry.exit.then(({ code }) => ({
      type: 'error',
      message: `the embedded Postgres helper exited (code ${code}):\n${entry.lines.slice(-12).join('\n')}`,
    })),
    sleep(120_000).then(() => ({ type: 'error', message: 'the embedded Postgres did not start within 120 s' })),
  ]);
  if (outcome.type !== 'ready') {
    const log = tailOf(logFile);
    // As root the server runs as the `postgres` user, which cannot reach a checkout under /root (mode 700).
    const rootHint =
      process.getuid?.() === 0 && /EACCES|permission denied/i.test(`${outcome.message}\n${log}`)
        ? `\nPostgres runs as the "postgres" user, which cannot reach ${root}: clone the repository where ` +
          'that user can read it (not under /root), or'
        : '';
    throw new StartError(
      `${outcome.message}\n--- ${shownData}/postgres.log ---\n${log}${rootHint}\n` +
        'start a Postgres yourself and set DATABASE_URL.',
    );
  }
  record('postgres', entry.child.pid, 'embedded-postgres.mjs');
  return { port, password, entry };
}

/** The Postgres URL to use, after making sure it answers and its database exists. */
async function resolvePostgres() {
  const pg = loadPg();
  const configured = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/ferry';
  let url = configured;
  let probe = await probePostgres(pg, url);
  let started;
  if (probe.state === 'down') {
    const u = new URL(configured);
    if (!isLoopback(u.hostname)) {
      throw new StartError(
        `Postgres at ${redact(configured)} does not answer (${probe.error.code ?? probe.error.message}).`,
      );
    }
    say(`nothing answers at ${redact(configured)} (${probe.error.code ?? probe.error.message})`);
    started = await startEmbeddedPostgres(Number(u.port || 5432));
    const embedded = new URL(configured);
    embedded.hostname = '127.0.0.1';
    embedded.port = String(started.port);
    embedded.username = 'postgres';
    embedded.password = started.password;
    url = embedded.toString();
    probe = await probePostgres(pg, url);
  }
  if (probe.state === 'missing-database') {
    await createDatabase(pg, url);
    probe = await probePostgres(pg, url);
  }
  if (probe.state !== 'ok') {
    throw new StartError(`Postgres at ${redact(url)} answered but refused: ${probe.error.message}`);
  }
  say(`Postgres: ${redact(url)}${started ? ' (embedded, started here)' : ''}`);
  return { url, started };
}

// --------------------------------------------------------------------------------------------- nats

/** Reads the server's INFO line: ok (with the INFO), down (nothing answers) or error (not NATS). */
function probeNats(url) {
  const u = new URL(url.split(',')[0].trim());
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 4222) });
    let buffer = '';
    const done = (result) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(3_000, () => done({ state: 'down', error: new Error('timeout') }));
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const end = buffer.indexOf('\r\n');
      if (end === -1) return;
      const line = buffer.slice(0, end);
      if (!line.startsWith('INFO ')) return done({ state: 'error', error: new Error(`not a NATS server: ${line}`) });
      try {
        done({ state: 'ok', info: JSON.parse(line.slice(5)) });
      } catch {
        done({ state: 'ok', info: {} });
      }
    });
    socket.on('error', (error) => done({ state: UNREACHABLE.has(error.code) ? 'down' : 'error', error }));
  });
}

function findExecutable(name) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function startNatsServer(preferredPort, configured) {
  const binary = findExecutable('nats-server');
  if (!binary) {
    throw new StartError(
      [
        `Nothing answers at ${configured}, and there is no nats-server on the PATH to start one.`,
        'Install NATS (2.9 or newer), then run npm start again:',
        '  Debian/Ubuntu:  sudo apt-get install nats-server',
        '  macOS:          brew install nats-server',
        '  elsewhere:      the official release from https://github.com/nats-io/nats-server/releases',
        'or point NATS_URL at a running NATS server that has JetStream enabled (nats-server -js).',
      ].join('\n'),
    );
  }
  const natsDir = path.join(dataDir, 'nats');
  const logFile = path.join(dataDir, 'nats-server.log');
  mkdirSync(natsDir, { recursive: true });
  const port = await choosePort(preferredPort);
  say(
    `starting ${binary} on 127.0.0.1:${port} (JetStream store in ${shownData}/nats, log in ${shownData}/nats-server.log)`,
  );
  // Through a small Node supervisor holding an IPC channel to this script: nats-server stops when we
  // die, even by SIGKILL.
  const entry = startChild(
    'nats',
    process.execPath,
    [
      path.join(root, 'scripts/lib/supervise.mjs'),
      binary,
      '-js',
      '-sd',
      natsDir,
      '-a',
      '127.0.0.1',
      '-p',
      String(port),
      '-l',
      logFile,
    ],
    { quiet: true, ipc: true },
  );
  record('nats', entry.child.pid, natsDir);
  const url = `nats://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (entry.exited) break;
    const probe = await probeNats(url);
    if (probe.state === 'ok') return { url, entry };
    await sleep(200);
  }
  throw new StartError(
    `nats-server did not come up on ${url}.\n${entry.lines.join('\n')}\n--- ${shownData}/nats-server.log ---\n${tailOf(logFile)}`,
  );
}

async function resolveNats() {
  const configured = process.env.NATS_URL || 'nats://127.0.0.1:4222';
  const probe = await probeNats(configured);
  if (probe.state === 'ok') {
    if (probe.info.jetstream !== true) {
      throw new StartError(`NATS at ${configured} has JetStream disabled: start it with -js (nats-server -js).`);
    }
    say(`NATS: ${configured} (version ${probe.info.version ?? '?'})`);
    return { url: configured };
  }
  if (probe.state === 'error') throw new StartError(`NATS at ${configured}: ${probe.error.message}`);
  const first = new URL(configured.split(',')[0].trim());
  if (!isLoopback(first.hostname)) {
    throw new StartError(`NATS at ${configured} does not answer (${probe.error.code ?? probe.error.message}).`);
  }
  say(`nothing answers at ${configured} (${probe.error.code ?? probe.error.message})`);
  const started = await startNatsServer(Number(first.port || 4222), configured);
  say(`NATS: ${started.url} (started here)`);
  return { url: started.url, started };
}

// ------------------------------------------------------------------------------------------- health

async function readyz(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body, text };
  } catch (err) {
    return { status: 0, error: err.cause?.code ?? err.name ?? err.message };
  }
}

function describeReadiness(result) {
  if (result.status === 0) return `no answer (${result.error})`;
  if (result.status === 200) return 'ready';
  if (!result.body) return `HTTP ${result.status}: ${result.text.slice(0, 200)}`;
  const failed = Array.isArray(result.body.failed) ? result.body.failed : [];
  const reasons = Object.entries(result.body.checks ?? {})
    .filter(([, check]) => check && check.ok === false)
    .map(([name, check]) => `${name}: ${check.error ?? 'failed'}`);
  return `HTTP ${result.status} ${result.body.status ?? ''}; failed: ${failed.join(', ') || '-'}${
    reasons.length ? `\n      ${reasons.join('\n      ')}` : ''
  }`;
}

// --------------------------------------------------------------------------------------------- main

const options = { seed: false };
for (const arg of process.argv.slice(2)) {
  if (arg === '--seed') options.seed = true;
  else if (arg === '--help' || arg === '-h') {
    out('Usage: npm start [-- --seed]\nStarts Postgres and NATS if needed, then the four Ferry services.');
    process.exit(0);
  } else {
    process.stderr.write(`unknown option ${arg} (usage: npm start [-- --seed])\n`);
    process.exit(2);
  }
}

/** Services first (they drain in-flight work), then the NATS and Postgres this script started. */
async function shutdown(code, reason) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (reason) say(reason);
  for (const timer of restartTimers) clearTimeout(timer);
  const startedAnything = children.size > 0;
  const running = [...children.values()].filter((c) => c.name !== 'postgres' && c.name !== 'nats' && !c.exited);
  if (running.length) say(`stopping ${running.map((c) => c.name).join(', ')}`);
  await Promise.all(running.map((c) => stopChild(c, 'SIGTERM', STOP_TIMEOUT_MS)));
  const infraStops = [];
  const nats = children.get('nats');
  if (nats && !nats.exited) {
    say('stopping nats-server');
    infraStops.push(stopChild(nats, 'SIGTERM', 10_000));
  }
  const postgres = children.get('postgres');
  if (postgres && !postgres.exited) {
    say('stopping the embedded Postgres');
    // The helper's exit hook stops the server (fast shutdown) and exits; the rest of its group (the
    // server, or an initdb still running on a first start) gets the SIGTERM too.
    signalChild(postgres, 'SIGTERM');
    infraStops.push(
      Promise.race([postgres.exit, sleep(20_000)]).then(() => {
        if (!postgres.exited) signalChild(postgres, 'SIGKILL');
      }),
    );
  }
  await Promise.all(infraStops);
  if (ownsRunFile) rmSync(runFile, { force: true });
  if (startedAnything) say(code === 0 ? 'stopped' : 'stopped (with errors)');
  process.exit(code);
}

let firstSignalAt = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (!shuttingDown) {
      firstSignalAt = Date.now();
      shutdown(0, `${signal} received`);
    } else if (Date.now() - firstSignalAt > 1_000) {
      // A second Ctrl-C (not npm forwarding the first one): stop waiting for the services to drain.
      warn('second signal: killing the services');
      for (const c of children.values()) if (c.name !== 'postgres' && c.name !== 'nats') signalChild(c, 'SIGKILL');
    }
  });
}
// Run by npm, this script's parent is npm's `sh -c`. A SIGTERM sent to npm alone kills that shell but is
// not passed on, so the parent going away counts as a SIGTERM; otherwise the services would be orphaned.
if (process.env.npm_lifecycle_event === 'start') {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent && !shuttingDown) shutdown(0, 'npm went away');
  }, 1_000).unref();
}
process.on('exit', () => {
  // Last resort (an uncaught error): no service outlives this script. Postgres stops on its own.
  for (const c of children.values()) if (c.name !== 'postgres') signalChild(c, 'SIGKILL');
});

/** Pending restarts, cancelled by shutdown. */
const restartTimers = new Set();
const crashes = new Map();

/**
 * Starts a service tied to this script by an IPC channel (it stops by itself if this script dies) and
 * restarts it with backoff when it crashes; after MAX_CRASHES within CRASH_WINDOW_MS it is given up,
 * loudly, and the rest keep running (the gateway's /readyz names what is missing).
 */
function superviseService(service, env) {
  const main = path.join('services', service.name, 'dist/main.js');
  const entry = startChild(service.name, process.execPath, [main], { env, ipc: true });
  record(service.name, entry.child.pid, main);
  entry.exit.then(({ code, signal }) => {
    if (shuttingDown) return;
    out(
      `${tag(service.name)} ${paint('31')(`exited unexpectedly (${signal ?? `exit code ${code}`}); its last lines:`)}`,
    );
    for (const line of entry.lines.slice(-20)) out(`${tag(service.name)}   ${line}`);
    const now = Date.now();
    const recent = [...(crashes.get(service.name) ?? []), now].filter((t) => now - t < CRASH_WINDOW_MS);
    crashes.set(service.name, recent);
    if (recent.length >= MAX_CRASHES) {
      children.delete(service.name);
      out('');
      out(
        paint('31')(bold(`[ferry] GIVING UP on ${service.name}: it crashed ${recent.length} times within a minute.`)),
      );
      out(paint('31')(`[ferry] The rest keeps running without it. Its last lines are above; to try it by hand:`));
      out(paint('31')(`[ferry]   node ${main}   (with the environment npm start gives it), or restart npm start.`));
      out('');
      return;
    }
    const delay = Math.min(MAX_RESTART_DELAY_MS, 1_000 * 2 ** (recent.length - 1));
    warn(
      `restarting ${service.name} in ${delay / 1000} s (crash ${recent.length} within a minute; crash ${MAX_CRASHES} gives up)`,
    );
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      if (!shuttingDown) superviseService(service, env);
    }, delay);
    restartTimers.add(timer);
  });
  return entry;
}

async function main() {
  const missing = [cliMain, ...SERVICES.map((s) => path.join(root, 'services', s.name, 'dist/main.js'))].filter(
    (file) => !existsSync(file),
  );
  if (missing.length) {
    throw new StartError(
      `not built: ${missing.map((f) => path.relative(root, f)).join(', ')}. Run \`npm start\` (its prestart ` +
        'step, scripts/bootstrap.mjs, installs and builds) rather than `node scripts/start.mjs`.',
    );
  }
  mkdirSync(dataDir, { recursive: true });
  await reclaimPreviousRun();
  saveRunState();

  const jwtSecret =
    process.env.FERRY_JWT_SECRET || persistent('jwt-secret', () => randomBytes(32).toString('base64url'));
  const demoOrg = persistent('demo-org', () => randomUUID());
  const uploadSecret =
    process.env.UPLOAD_SIGNING_SECRET ||
    persistent('upload-signing-secret', () => randomBytes(32).toString('base64url'));

  // NATS first: when it cannot be had, nothing else should be started only to be stopped again.
  const nats = await resolveNats();
  if (shuttingDown) return;
  const postgres = await resolvePostgres();
  if (shuttingDown) return;

  // FERRY_NAMESPACE and the rest of the environment pass through as they are.
  const baseEnv = {
    ...process.env,
    DATABASE_URL: postgres.url,
    NATS_URL: nats.url,
    LOG_LEVEL: process.env.LOG_LEVEL || 'info',
    // One local blob store for every service (transfer writes, the gateway streams parts in, qa reads).
    BLOB_DIR: process.env.BLOB_DIR || path.join(dataDir, 'blobs'),
    UPLOAD_SIGNING_SECRET: uploadSecret,
  };
  const cliEnv = { ...baseEnv, FERRY_JWT_SECRET: jwtSecret };

  say('provisioning streams and migrating schemas (ferry setup)');
  const setup = await runCli('setup', ['setup'], cliEnv);
  if (shuttingDown) return;
  if (setup.code !== 0)
    throw new StartError(`ferry setup failed (exit code ${setup.code ?? setup.signal}); see above.`);

  const ports = {};
  const healthPorts = {};
  async function portFor(name, portVar, defaultPort) {
    const requested = process.env[portVar];
    if (requested) {
      const port = Number(requested);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw new StartError(`${portVar}=${requested} is not a port number.`);
      }
      if (!(await portIsFree(port))) throw new StartError(`${portVar}=${port}: that port is in use.`);
      claimedPorts.add(port);
      return port;
    }
    const port = await choosePort(defaultPort);
    if (port !== defaultPort) warn(`port ${defaultPort} is taken; ${name} uses ${port} (set ${portVar} to choose)`);
    return port;
  }
  for (const service of SERVICES) {
    ports[service.name] = await portFor(service.name, service.portVar, service.defaultPort);
    if (service.healthPortVar) {
      healthPorts[service.name] = await portFor(service.name, service.healthPortVar, service.defaultHealthPort);
    }
  }

  for (const service of SERVICES) {
    const env = { ...baseEnv, [service.childPortVar]: String(ports[service.name]) };
    if (service.healthPortVar) env.HEALTH_PORT = String(healthPorts[service.name]);
    if (service.name === 'gateway') env.FERRY_JWT_SECRET = jwtSecret;
    superviseService(service, env);
  }

  const gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
  say(`waiting for ${gatewayUrl}/readyz (and the other services' /readyz)`);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let ready = false;
  while (!shuttingDown && Date.now() < deadline) {
    // The gateway can be ready before a service behind it is; "up" means all four are.
    const results = await Promise.all(SERVICES.map((s) => readyz(ports[s.name])));
    if (results.every((r) => r.status === 200)) {
      ready = true;
      break;
    }
    await sleep(500);
  }
  if (shuttingDown) return;
  if (!ready) {
    const report = await Promise.all(
      SERVICES.map(
        async (s) =>
          `  ${s.name.padEnd(11)} :${ports[s.name]}/readyz  ${describeReadiness(await readyz(ports[s.name]))}`,
      ),
    );
    throw new StartError(`not ready after ${READY_TIMEOUT_MS / 1000} s:\n${report.join('\n')}`);
  }

  const tokenRun = await runCli(
    'token',
    ['token', '--role', 'admin', '--org', demoOrg, '--sub', 'demo-admin', '--ttl', '12h'],
    cliEnv,
    { capture: true },
  );
  if (shuttingDown) return;
  const token = tokenRun.stdout.trim().split('\n').filter(Boolean).at(-1);
  if (tokenRun.code !== 0 || !token) {
    warn(`could not mint a demo token (exit code ${tokenRun.code}): ${tokenRun.lines.slice(-5).join(' | ')}`);
  } else {
    writeFileSync(path.join(dataDir, 'demo-token'), `${token}\n`, { mode: 0o600 });
  }

  let seedOutput = '';
  if (options.seed) {
    say(`loading demo data into org ${demoOrg} (ferry seed)`);
    // --data-dir: the seed leaves the demo device's token and this gateway's URL in demo-device.json
    // there, for `npm run demo:upload`.
    const seed = await runCli(
      'seed',
      ['seed', '--org', demoOrg, '--gateway-url', gatewayUrl, '--data-dir', dataDir],
      cliEnv,
      { capture: true },
    );
    if (seed.code === 0) seedOutput = seed.stdout.trimEnd();
    else {
      for (const line of seed.stdout.trimEnd().split('\n')) out(`${tag('seed')} ${line}`);
      warn(`ferry seed failed (exit code ${seed.code ?? seed.signal}); the system runs without demo data`);
    }
  }
  if (shuttingDown) return;

  const lines = [
    '',
    bold('Ferry is up.'),
    `  Gateway       ${gatewayUrl}`,
    `  API docs      ${gatewayUrl}/api/v1/docs`,
    `  OpenAPI       ${gatewayUrl}/api/v1/openapi.json`,
    `  Health        ${SERVICES.map((s) => `${s.name} :${healthPorts[s.name] ?? ports[s.name]}`).join(', ')}  (/healthz /readyz /metrics)`,
    `  Postgres      ${redact(postgres.url)}${postgres.started ? `  (embedded, ${shownData}/postgres)` : ''}`,
    `  NATS          ${nats.url}${nats.started ? `  (nats-server started here, ${shownData}/nats)` : ''}`,
    `  Demo org      ${demoOrg}`,
  ];
  if (token) {
    lines.push(
      `  Admin token   (12 h, also in ${shownData}/demo-token)`,
      `    ${token}`,
      '',
      '  Try:',
      `    export TOKEN=${token}`,
      `    curl -H "Authorization: Bearer $TOKEN" ${gatewayUrl}/api/v1/orders`,
    );
  }
  // The seed's own summary (its objects, tokens and curl lines) is printed as it is, ready to copy.
  if (seedOutput) lines.push('', ...seedOutput.split('\n'));
  lines.push('', 'Press Ctrl-C to stop.', '');
  for (const line of lines) out(line);
}

main().catch((err) => {
  const message = err instanceof StartError ? err.message : (err?.stack ?? String(err));
  process.stderr.write(`[ferry] error: ${message}\n`);
  shutdown(1);
});
