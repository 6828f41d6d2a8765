import { defineRpc, HEADERS, type RpcCallContext } from '@ferry/contracts';
import type { INestMicroservice } from '@nestjs/common';
import { Controller, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import { Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Database } from '../db/database.js';
import { DomainError } from '../errors/domain-error.js';
import { toNatsHeaders } from '../messaging/envelope.js';
import { type EventContext, InboxConsumer } from '../messaging/inbox-consumer.js';
import { Outbox } from '../messaging/outbox.js';
import { RpcClient } from '../messaging/rpc-client.js';
import { type RpcHandlerContext, RpcServer } from '../messaging/rpc-server.js';
import { consumerConfig } from '../messaging/topology.js';
import { createMetrics } from '../metrics/metrics.js';
import { probeConsumer, probeEvent, silentLogger, TestInfra, waitFor } from '../testing/index.js';
import { EventsHandler, RpcHandler } from './decorators.js';
import { FerryTransport, PassThroughRpcFilter } from './ferry-transport.js';
import { LOGGER, PlatformModule } from './platform-module.js';

const greet = defineRpc({
  subject: 'production.rpc.probe.greet',
  kind: 'command',
  request: z.object({ name: z.string() }),
  reply: z.object({ greeting: z.string(), rows: z.number() }),
});
const consumer = probeConsumer({ durable: 'production__nest_probe', ackWaitMs: 2_000 });

@Injectable()
class GreetingService {
  constructor(
    private readonly db: Kysely<any>,
    @Inject(LOGGER) readonly logger: unknown,
  ) {}
  async greet(name: string, trx: Kysely<any>) {
    if (name === 'nobody') throw new DomainError('not_found', 'nobody is not here');
    await sql`insert into greetings (name) values (${name})`.execute(trx);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from greetings`.execute(this.db);
    return { greeting: `hello ${name}`, rows: rows[0]!.n };
  }
}

@Controller()
class GreetingHandlers {
  constructor(private readonly service: GreetingService) {}

  @RpcHandler(greet)
  greet(@Payload() data: { name: string }, @Ctx() ctx: RpcHandlerContext) {
    return this.service.greet(data.name, ctx.trx);
  }

  @EventsHandler(consumer)
  async onProbe(@Payload() payload: { n: number }, @Ctx() ctx: EventContext) {
    await new Promise((r) => setTimeout(r, 100)); // an awaited handler: the ack must wait for this
    await sql`insert into greetings (name) values (${`probe-${payload.n}`})`.execute(ctx.trx);
  }
}

@Module({ providers: [GreetingService], controllers: [GreetingHandlers] })
class GreetingModule {}

describe('FerryTransport', () => {
  let infra: TestInfra;
  let database: Database<any>;
  let app: INestMicroservice;
  let client: RpcClient;
  const call: RpcCallContext = {
    request_id: 'nest-1',
    actor: { kind: 'user', sub: 'u', org: '01900000-0000-7000-8000-00000000000a', role: 'admin' },
  };

  beforeAll(async () => {
    infra = await TestInfra.create({ services: [{ name: 'nest' }] });
    database = infra.database('nest');
    await sql`create table greetings (name text not null)`.execute(database.db);
    await infra.jsm.consumers.add(infra.ns.stream('PRODUCTION'), consumerConfig(infra.ns, consumer));
    const logger = silentLogger();
    const rpc = new RpcServer({ nc: infra.nc, ns: infra.ns, service: 'production', db: database.db, logger });
    const transport = new FerryTransport({
      rpc,
      rpcs: [greet],
      consumers: [consumer],
      createConsumer: (def, handler) =>
        new InboxConsumer({ def, handler, db: database.db, js: infra.js, ns: infra.ns, logger }),
    });
    app = await NestFactory.createMicroservice(
      {
        module: class Root {},
        imports: [
          PlatformModule.forRoot({
            db: database.db,
            outbox: new Outbox(infra.ns),
            ns: infra.ns,
            logger,
            config: {},
            metrics: createMetrics('nest-test'),
            rpcClient: new RpcClient({ nc: infra.nc, ns: infra.ns, logger }),
          }),
          GreetingModule,
        ],
      },
      { strategy: transport, logger: false },
    );
    app.useGlobalFilters(new PassThroughRpcFilter());
    await app.listen();
    client = new RpcClient({ nc: infra.nc, ns: infra.ns, logger });
  });
  afterAll(async () => {
    await app?.close();
    await infra.cleanup();
  });

  it('routes an RPC to the decorated method with its dependencies injected by type', async () => {
    // rows is counted through the injected pool, which cannot see the command's uncommitted insert.
    await expect(client.call(greet, { name: 'ada' }, call)).resolves.toEqual({ greeting: 'hello ada', rows: 0 });
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from greetings`.execute(database.db);
    expect(rows[0]!.n).toBe(1);
  });

  it('lets a DomainError thrown in a handler reach the caller with its code (not Nest’s generic error)', async () => {
    await expect(client.call(greet, { name: 'nobody' }, call)).rejects.toMatchObject({
      code: 'not_found',
      message: 'nobody is not here',
    });
  });

  it('awaits an event handler and acks only after its transaction committed', async () => {
    await infra.js.publish(infra.ns.subject(probeEvent.type), JSON.stringify({ n: 1 }), {
      msgID: 'nest-probe-1',
      headers: toNatsHeaders({ [HEADERS.eventType]: probeEvent.type }),
    });
    await waitFor(async () => {
      const info = await infra.jsm.consumers.info(infra.ns.stream('PRODUCTION'), consumer.durable);
      return info.num_ack_pending === 0 && info.delivered.stream_seq >= 1;
    });
    const { rows } = await sql<{ name: string }>`select name from greetings where name like 'probe-%'`.execute(
      database.db,
    );
    expect(rows).toEqual([{ name: 'probe-1' }]);
  });

  it('refuses to boot a handler for a subject that is not in its contracts', async () => {
    const logger = silentLogger();
    const transport = new FerryTransport({
      rpc: new RpcServer({ nc: infra.nc, ns: infra.ns, service: 'production', db: database.db, logger }),
      rpcs: [],
      consumers: [consumer],
      createConsumer: (def, handler) =>
        new InboxConsumer({ def, handler, db: database.db, js: infra.js, ns: infra.ns, logger }),
    });
    transport.addHandler(greet.subject, async () => ({}));
    const err = await new Promise((resolve) => transport.listen(resolve));
    expect(String(err)).toMatch(/names no RPC contract/);
  });
});
