/**
 * Crash points for tests that must prove nothing is lost when a process dies at the worst moment
 * (between publish and mark, between commit and ack). `FERRY_FAULTS=relay.after_publish` makes the
 * process SIGKILL itself the first time that point is reached. Unset in production: a no-op.
 *
 * A point that several parts of one process reach can be narrowed to one of them with `@<scope>`:
 * `FERRY_FAULTS=consumer.after_commit@production__upload-verified` fires only after a commit of that
 * durable consumer, not after the first commit of whichever consumer happens to get a message first.
 * The scope of each point is named below; a point without `@` fires for every scope. Entries are
 * comma-separated.
 */
const armed = new Set(
  (process.env.FERRY_FAULTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

/** Points marked "scope:" below take one: pass it to faultPoint, arm it as `point@scope`. */
export type FaultPoint =
  | 'relay.after_publish'
  /** scope: the consumer's durable name (`production__upload-verified`) */
  | 'consumer.after_commit'
  /** scope: the RPC subject, without the namespace (`production.rpc.batch.create`) */
  | 'rpc.after_commit'
  | 'transfer.after_verify'
  | 'transfer.after_task_failed'
  | 'qa.mid_check'
  | 'qa.after_record';

export function faultPoint(point: FaultPoint, scope?: string): void {
  if (armed.size === 0) return;
  if (!armed.has(point) && !(scope !== undefined && armed.has(`${point}@${scope}`))) return;
  const where = scope === undefined ? point : `${point}@${scope}`;
  process.stderr.write(`fault injected at ${where}: killing process ${process.pid}\n`);
  process.kill(process.pid, 'SIGKILL');
  // The signal is delivered asynchronously; block so not one more instruction of the caller runs.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
}
