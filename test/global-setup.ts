import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

/**
 * Tests need a real Postgres and a real NATS with JetStream (DESIGN §10). Use the ones at
 * DATABASE_URL / NATS_URL (default 127.0.0.1); when neither answers and a container engine exists,
 * start them with testcontainers; otherwise stop with a message that says what to start.
 */
function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

export default async function setup() {
  // Child processes in tests (crash fixtures, services in end-to-end tests) run the built code.
  const root = path.resolve(import.meta.dirname, '..');
  execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-b'], { cwd: root, stdio: 'inherit' });

  const dbUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const natsUrl = (process.env.TEST_NATS_URL ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',')[0]!;
  const [pgUp, natsUp] = await Promise.all([reachable(dbUrl, 5432), reachable(natsUrl, 4222)]);
  if (pgUp && natsUp) return;

  const stops: (() => Promise<unknown>)[] = [];
  try {
    const { GenericContainer, Wait } = await import('testcontainers');
    if (!pgUp) {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      const pgc = await new PostgreSqlContainer('postgres:15-alpine').withDatabase('test').start();
      process.env.TEST_DATABASE_URL = pgc.getConnectionUri();
      stops.push(() => pgc.stop());
    }
    if (!natsUp) {
      const nats = await new GenericContainer('nats:2.9-alpine')
        .withCommand(['-js'])
        .withExposedPorts(4222)
        .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
        .start();
      process.env.TEST_NATS_URL = `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`;
      stops.push(() => nats.stop());
    }
  } catch (err) {
    throw new Error(
      `Tests need Postgres at ${dbUrl} (${pgUp ? 'up' : 'down'}) and NATS with JetStream at ${natsUrl} (${natsUp ? 'up' : 'down'}). ` +
        `Start them (see docs/operations.md) or install a container engine for testcontainers. (${(err as Error).message})`,
    );
  }
  return async () => {
    for (const stop of stops) await stop();
  };
}
