#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { BaseConfig, loadConfig, Namespace } from '@ferry/platform';
import { CliError, describeFailure, exitCodeOf } from './cli-error.js';
import { bulkQaCancel, bulkQaFollow, bulkQaPreview, bulkQaStart } from './commands/bulk-qa.js';
import {
  addDevice,
  describeDevice,
  describeDevices,
  listDevices,
  pairDevice,
  revokeDeviceTokens,
} from './commands/device.js';
import { dlqList, dlqReplay } from './commands/dlq.js';
import { describeSeed, seed } from './commands/seed.js';
import { type Env, migrateAll, provision } from './commands/setup.js';
import { parseDuration, token } from './commands/token.js';
import { writeDemoDevice } from './demo/demo-device-file.js';
import { demoUpload } from './demo/demo-upload.js';

const USAGE = `ferry <command> [options]

Commands:
  setup                      provision JetStream streams/consumers and migrate every schema (idempotent)
  provision [--replicas N]   create or update streams and durable consumers only
  migrate [--service NAME]   apply pending migrations (production, transfer, qa, gateway)
  token --org UUID [--role admin|operator|viewer] [--sub NAME] [--ttl 12h] [--secret-file F]
                             mint a bearer JWT signed with FERRY_JWT_SECRET; prints only the token
  seed [--org UUID] [--json] [--gateway-url URL] [--data-dir DIR]
                             create (or find) a demo organization: scene, order, workstation, batch, the
                             device demo-arm-01 registered and paired (a new device token each run), tokens;
                             with --data-dir, DIR/demo-device.json for npm run demo:upload
                             (the system must be running; needs FERRY_JWT_SECRET)
  device add --org UUID --device-id ID [--name N] [--robot-type T] [--topics /a,/b]
                             register a device (transfer); prints it
  device pair --org UUID --device ID [--ttl 10m] [--redeem [--label L]]
                             create a single-use pairing token and print only it (notes on stderr); with
                             --redeem exchange it at once and print only the device token (shown once)
  device revoke --org UUID --device ID (--token TOKEN_ID | --all)
                             revoke device tokens (the gateway may accept them up to DEVICE_TOKEN_CACHE_TTL_MS)
  device list --org UUID     the organization's devices and their live tokens
                             (device commands act as an admin of --org over NATS; --device takes the
                             device_id or the id; --json prints JSON)
  demo-upload [--data-dir DIR] [--gateway-url URL] [--token fdt_…]
                             as the demo device: take its next task, start and finish it, write a demo MCAP
                             and sidecar, upload them (resumable), wait for the episode and print it; reads
                             DIR/demo-device.json (DIR: FERRY_DATA_DIR or .data) left by npm start -- --seed
  dlq list [--consumer NAME] [--limit N]
                             show dead-lettered messages (JSON lines)
  dlq replay SEQ             republish DLQ entry SEQ to its original subject and remove it
  bulk-qa preview [FILTERS]  how many episodes a bulk QA run would check (no side effects)
  bulk-qa start [FILTERS] [--follow]
                             start a bulk QA run; prints its id and live page URL (no token in it: the page
                             asks for one); --follow as below
  bulk-qa follow RUN_ID [--progress bar|lines]
                             follow a run live (resumes a dropped connection); exit 0 when it completed,
                             1 otherwise, with the failures by check; a bar on a terminal, lines otherwise
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
      'device-id': { type: 'string' },
      name: { type: 'string' },
      'robot-type': { type: 'string' },
      topics: { type: 'string' },
      device: { type: 'string' },
      token: { type: 'string' },
      all: { type: 'boolean' },
      redeem: { type: 'boolean' },
      label: { type: 'string' },
      'data-dir': { type: 'string' },
      follow: { type: 'boolean' },
      progress: { type: 'string' },
      'qa-status': { type: 'string' },
      'scene-id': { type: 'string' },
      'order-id': { type: 'string' },
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
      const gatewayUrl = values['gateway-url'] ?? 'http://127.0.0.1:3000';
      const dataDir = values['data-dir'];
      if (dataDir) {
        writeDemoDevice(dataDir, {
          gateway_url: gatewayUrl,
          org: result.org,
          device_id: result.device.device_id,
          device_token: result.device.token,
          token_id: result.device.token_id,
        });
      }
      console.log(values.json ? JSON.stringify(result, null, 2) : describeSeed(result, { gatewayUrl, dataDir }));
      return 0;
    }
    case 'device':
      return device(sub, env, values);
    case 'demo-upload':
      // Device side only: HTTP with the device token, no NATS or database.
      await demoUpload({
        dataDir: values['data-dir'] ?? process.env.FERRY_DATA_DIR ?? '.data',
        gatewayUrl: values['gateway-url'],
        token: values.token,
        out: process.stdout,
      });
      return 0;
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
      if (values.progress !== undefined && values.progress !== 'bar' && values.progress !== 'lines') {
        console.error('ferry bulk-qa: --progress must be bar or lines');
        return 2;
      }
      const ctx = {
        gatewayUrl: values['gateway-url'] ?? process.env.FERRY_GATEWAY_URL ?? 'http://127.0.0.1:3000',
        token,
        out: process.stdout,
        err: process.stderr,
        ...(values.progress ? { progress: values.progress as 'bar' | 'lines' } : {}),
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

type Values = Record<string, string | boolean | undefined>;
const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

async function device(sub: string | undefined, env: () => Env, values: Values): Promise<number> {
  const json = values.json === true;
  switch (sub) {
    case 'add': {
      const added = await addDevice(env(), {
        org: str(values.org),
        deviceId: str(values['device-id']),
        name: str(values.name),
        robotType: str(values['robot-type']),
        topics: str(values.topics),
      });
      console.log(json ? JSON.stringify(added, null, 2) : `registered ${describeDevice(added)}`);
      return 0;
    }
    case 'pair': {
      const ttl = str(values.ttl);
      const paired = await pairDevice(env(), {
        org: str(values.org),
        device: str(values.device),
        ttlSeconds: ttl ? parseDuration(ttl) : undefined,
        redeem: values.redeem === true,
        label: str(values.label),
      });
      if (json) {
        console.log(JSON.stringify(paired, null, 2));
        return 0;
      }
      // Only the token on stdout (TOKEN=$(ferry device pair …)); what it is goes to stderr.
      if (paired.issued) {
        console.error(
          `device token for ${paired.device.device_id} (token id ${paired.issued.token_id}); shown once, stored ` +
            'only as a hash: send it as Authorization: Bearer <token>',
        );
        console.log(paired.issued.token);
      } else {
        console.error(
          `pairing token for ${paired.device.device_id}, single use, expires ${paired.pairing.expires_at}; the ` +
            'device exchanges it at POST /api/v1/device-tokens for its device token (docs/devices.md)',
        );
        console.log(paired.pairing.pairing_token);
      }
      return 0;
    }
    case 'revoke': {
      const { device: d, revoked } = await revokeDeviceTokens(env(), {
        org: str(values.org),
        device: str(values.device),
        tokenId: str(values.token),
        all: values.all === true,
      });
      if (json) console.log(JSON.stringify({ device: d, revoked }, null, 2));
      else if (revoked.length === 0) console.log(`${d.device_id} has no live token; nothing to revoke`);
      else {
        for (const t of revoked) console.log(`revoked token ${t.id} of ${d.device_id}`);
        console.log(
          'gateways that checked it in the last DEVICE_TOKEN_CACHE_TTL_MS (30 s by default) accept it until then',
        );
      }
      return 0;
    }
    case 'list': {
      const devices = await listDevices(env(), { org: str(values.org) });
      console.log(json ? JSON.stringify(devices, null, 2) : describeDevices(devices));
      return 0;
    }
    default:
      throw new CliError('usage: ferry device add | pair | revoke | list --org UUID … (ferry --help)', { exitCode: 2 });
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`ferry: ${describeFailure(err)}`);
    process.exit(exitCodeOf(err));
  },
);
