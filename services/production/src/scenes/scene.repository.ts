import type { Scene, SceneListQuery } from '@ferry/contracts';
import { isUniqueViolation } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import type { Kysely, Selectable } from 'kysely';
import type { ProductionDB, ScenesTable } from '../database.js';

type Db = Kysely<ProductionDB>;
export type SceneRow = Selectable<ScenesTable>;

export class SceneNameTaken extends Error {}

export function toScene(row: SceneRow): Scene {
  return {
    id: row.id,
    organization_id: row.organization_id,
    name: row.name,
    description: row.description,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

const NAME_KEY = 'scenes_org_name_live_key';

@Injectable()
export class SceneRepository {
  async insert(
    db: Db,
    row: { id: string; organization_id: string; name: string; description: string | null },
  ): Promise<SceneRow> {
    try {
      return await db.insertInto('scenes').values(row).returningAll().executeTakeFirstOrThrow();
    } catch (err) {
      if (isUniqueViolation(err, NAME_KEY)) throw new SceneNameTaken();
      throw err;
    }
  }

  async find(
    db: Db,
    org: string,
    id: string,
    options: { lock?: 'update' | 'share' } = {},
  ): Promise<SceneRow | undefined> {
    let q = db
      .selectFrom('scenes')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null);
    if (options.lock === 'update') q = q.forUpdate();
    if (options.lock === 'share') q = q.forShare();
    return q.executeTakeFirst();
  }

  /** Any state, any organization: for reading what an existing task refers to. */
  async findById(db: Db, id: string): Promise<SceneRow | undefined> {
    return db.selectFrom('scenes').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(db: Db, org: string, query: SceneListQuery, after?: string): Promise<SceneRow[]> {
    let q = db.selectFrom('scenes').selectAll().where('organization_id', '=', org).where('deleted_at', 'is', null);
    if (query.q) q = q.where('name', 'ilike', `%${query.q.replace(/[\\%_]/g, '\\$&')}%`);
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(query.limit + 1)
      .execute();
  }

  async update(db: Db, id: string, patch: { name?: string; description?: string | null }): Promise<SceneRow> {
    try {
      return await db
        .updateTable('scenes')
        .set({ ...patch, updated_at: new Date() })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (err) {
      if (isUniqueViolation(err, NAME_KEY)) throw new SceneNameTaken();
      throw err;
    }
  }

  async softDelete(db: Db, id: string): Promise<SceneRow> {
    return db
      .updateTable('scenes')
      .set({ deleted_at: new Date(), updated_at: new Date() })
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Live orders that use the scene (a few, for the 409 body) and how many there are. */
  async liveOrderReferences(
    db: Db,
    sceneId: string,
  ): Promise<{ sample: { id: string; name: string }[]; count: number }> {
    const sample = await db
      .selectFrom('orders')
      .select(['id', 'name'])
      .where('scene_id', '=', sceneId)
      .where('deleted_at', 'is', null)
      .orderBy('id')
      .limit(10)
      .execute();
    if (sample.length < 10) return { sample, count: sample.length };
    const { count } = await db
      .selectFrom('orders')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('scene_id', '=', sceneId)
      .where('deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    return { sample, count: Number(count) };
  }
}
