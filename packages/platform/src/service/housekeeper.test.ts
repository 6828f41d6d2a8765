import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, TestInfra } from '../testing/index.js';
import { Housekeeper } from './housekeeper.js';

describe('Housekeeper', () => {
  let infra: TestInfra;
  beforeAll(async () => {
    infra = await TestInfra.create({ services: [{ name: 'hk' }], provision: false });
  });
  afterAll(() => infra.cleanup());

  it('trims old published outbox rows, inbox rows past the replay horizon and old command log entries only', async () => {
    const { db } = infra.database('hk');
    await sql`insert into outbox (id, subject, event_type, payload, published_at) values
      (gen_random_uuid(), 's', 't', '{}', now() - interval '8 days'),
      (gen_random_uuid(), 's', 't', '{}', now() - interval '1 day'),
      (gen_random_uuid(), 's', 't', '{}', null)`.execute(db);
    await sql`insert into inbox (consumer, message_id, subject, received_at) values
      ('c', 'old', 's', now() - interval '9 days'), ('c', 'recent', 's', now() - interval '6 days')`.execute(db);
    await sql`insert into command_log (command_id, subject, reply, created_at) values
      (gen_random_uuid(), 's', 'null', now() - interval '3 days'), (gen_random_uuid(), 's', 'null', now())`.execute(db);
    const removed = await new Housekeeper({ db, logger: silentLogger() }).pass();
    expect(removed).toEqual({ outbox: 1, inbox: 1, command_log: 1 });
    const { rows } = await sql<{ message_id: string }>`select message_id from inbox`.execute(db);
    expect(rows).toEqual([{ message_id: 'recent' }]);
    const unpublished = await sql<{
      n: number;
    }>`select count(*)::int as n from outbox where published_at is null`.execute(db);
    expect(unpublished.rows[0]!.n).toBe(1);
  });
});
