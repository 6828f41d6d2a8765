// Runs a non-Node server (nats-server) for scripts/start.mjs, tied to it by an IPC channel: when the
// launcher goes away — even by SIGKILL, which it cannot catch — the channel closes and the server is
// stopped, so no server outlives the `npm start` that started it. SIGTERM/SIGINT are passed on.
//
// Usage (from start.mjs, with an 'ipc' stdio slot): node supervise.mjs <command> [args…]
import { spawn } from 'node:child_process';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: supervise.mjs <command> [args…]\n');
  process.exit(2);
}

const child = spawn(command, args, { stdio: 'inherit' });
let stopping = false;

function stop(signal) {
  if (stopping) return;
  stopping = true;
  child.kill(signal);
  // A server that ignores SIGTERM still goes.
  setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
}

process.on('disconnect', () => stop('SIGTERM'));
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
child.on('error', (err) => {
  process.stderr.write(`supervise: cannot start ${command}: ${err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
