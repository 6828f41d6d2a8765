#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { BaseConfig, ConfigError, loadConfig, Namespace } from '@ferry/platform';
import { bulkQaCancel, bulkQaFollow, bulkQaPreview, bulkQaStart } from './commands/bulk-qa.js';
import { dlqList, dlqReplay } from './commands/dlq.js';
import { describeSeed, seed } from './commands/seed.js';
import { type Env, migrateAll, provision } from './commands/setup.js';
import { token } from './commands/token.js';

const USAGE = `ferry <command> [options]

Commands:
  setup                      provision JetStream streams/consumers and migrate every schema (idempotent)
  provision [--replicas N]   create or update streams and durable consumers only
  migrate [--service NAME]   apply pending migrations (production, transfer, qa, gateway)
  token --org UUID [--role admin|operator|viewer] [--sub NAME] [--ttl 12h] [--secret-file F]
                             mint a bearer JWT signed with FERRY_JWT_SECRET; prints only the token
  seed [--org UUID] [--json]  create (or find) a demo organization: scene, order, workstation, batch, tokens
                             (the system must be running; needs FERRY_JWT_SECRET)
  dlq list [--consumer NAME] [--limit N]
                             show dead-lettered messages (JSON lines)
  dlq replay SEQ             republish DLQ entry SEQ to its original subject and remove it
  bulk-qa preview [FILTERS]  how many episodes a bulk QA run would check (no side effects)
  bulk-qa start [FILTERS] [--follow]
                             start a bulk QA run; prints its id and live page URL; --follow as below
  bulk-qa follow RUN_ID      follow a run live (resumes a dropped connection); exit 0 when it completed,
                             1 otherwise, with the failures by check
  bulk-qa cancel RUN_ID      cancel a run
    over HTTP: --gateway-url URL (or FERRY_GATEWAY_URL, default http://127.0.0.1:3000),
    --token TOKEN (or FERRY_TOKEN). FILTERS: --qa-status a,b --scene-id ID --order-id ID --device-id ID
    --robot-type T --label L --created-from TS --created-to TS --q TEXT

Environment: DATABASE_URL, NATS_URL, FERRY_NAMESPACE, FERRY_JWT_SECRET (see docs/operations.md).`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      org: { type: 'string' },
      role: { type: 'string' },
      sub: { type: 'string' },
      ttl: { type: 'string' },
      'secret-file': { type: 'string' },
      service: { type: 'string' },
      replicas: { type: 'string' },
      consumer: { type: 'string' },
      limit: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      json: { type: 'boolean' },
      'gateway-url': { type: 'string' },
      token: { type: 'string' },
      follow: { type: 'boolean' },
      'qa-status': { type: 'string' },
      'scene-id': { type: 'string' },
      'order-id': { type: 'string' },
      'device-id': { type: 'string' },
      'robot-type': { type: 'string' },
      label: { type: 'string' },
      'created-from': { type: 'string' },
      'created-to': { type: 'string' },
      q: { type: 'string' },
    },
  });
  const [command, sub, arg] = positionals;
  if (!command || values.help) {
    console.log(USAGE);
    return command || values.help ? 0 : 2;
  }
  const env = (): Env => {
    const config = loadConfig(BaseConfig);
    return { databaseUrl: config.DATABASE_URL, natsUrl: config.NATS_URL, ns: new Namespace(config.FERRY_NAMESPACE) };
  };
  switch (command) {
    case 'setup':
      await provision(env(), { replicas: values.replicas ? Number(values.replicas) : undefined });
      await migrateAll(env());
      return 0;
    case 'provision':
      await provision(env(), { replicas: values.replicas ? Number(values.replicas) : undefined });
      return 0;
    case 'migrate':
      await migrateAll(env(), values.service);
      return 0;
    case 'token':
      console.log(await token({ ...values, secretFile: values['secret-file'] }));
      return 0;
    case 'seed': {
      const result = await seed(env(), { org: values.org });
      console.log(values.json ? JSON.stringify(result, null, 2) : describeSeed(result, values['gateway-url']));
      return 0;
    }
    case 'dlq':
      if (sub === 'list') {
        for (const entry of await dlqList(env(), {
          consumer: values.consumer,
          limit: values.limit ? Number(values.limit) : undefined,
        })) {
          console.log(JSON.stringify(entry));
        }
        return 0;
      }
      if (sub === 'replay' && arg && /^\d+$/.test(arg)) {
        const { replayed, newStreamSeq } = await dlqReplay(env(), Number(arg));
        console.log(
          `replayed DLQ ${arg} (${replayed.subject}, event ${replayed.eventId ?? '?'}) as stream seq ${newStreamSeq}`,
        );
        return 0;
      }
      console.error('usage: ferry dlq list | ferry dlq replay SEQ');
      return 2;
    case 'bulk-qa': {
      const token = values.token ?? process.env.FERRY_TOKEN;
      if (!token) {
        console.error('ferry bulk-qa: give --token or set FERRY_TOKEN (mint one with `ferry token`)');
        return 2;
      }
      const ctx = {
        gatewayUrl: values['gateway-url'] ?? process.env.FERRY_GATEWAY_URL ?? 'http://127.0.0.1:3000',
        token,
        out: process.stdout,
        err: process.stderr,
      };
      if (sub === 'preview') return bulkQaPreview(ctx, values);
      if (sub === 'start') return bulkQaStart(ctx, values, { follow: values.follow });
      if (sub === 'follow' && arg) return bulkQaFollow(ctx, arg);
      if (sub === 'cancel' && arg) return bulkQaCancel(ctx, arg);
      console.error('usage: ferry bulk-qa preview|start [filters] [--follow] | follow RUN_ID | cancel RUN_ID');
      return 2;
    }
    default:
      console.error(`unknown command ${command}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`ferry: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
    process.exit(1);
  },
);
