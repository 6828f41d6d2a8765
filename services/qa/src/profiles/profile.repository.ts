import type { QaProfile, QaProfileListQuery, QaProfileRecord } from '@ferry/contracts';
import { isUniqueViolation } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { type Insertable, type Kysely, type Selectable, sql, type Updateable } from 'kysely';
import type { ProfilesTable, QaDB } from '../database.js';

type Db = Kysely<QaDB>;
type ProfileRow = Selectable<ProfilesTable>;

export class ProfileScopeTaken extends Error {
  override readonly name = 'ProfileScopeTaken';
}

export function toProfile(row: ProfileRow): QaProfileRecord {
  return {
    id: row.id,
    organization_id: row.organization_id,
    name: row.name,
    robot_type: row.robot_type,
    scene_id: row.scene_id,
    rules: row.rules as QaProfile,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

@Injectable()
export class ProfileRepository {
  async insert(db: Db, row: Insertable<ProfilesTable>): Promise<ProfileRow> {
    try {
      return await db.insertInto('profiles').values(row).returningAll().executeTakeFirstOrThrow();
    } catch (err) {
      if (isUniqueViolation(err, 'profiles_scope_live_key')) throw new ProfileScopeTaken();
      throw err;
    }
  }

  async find(db: Db, org: string, id: string): Promise<ProfileRow | undefined> {
    return db
      .selectFrom('profiles')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  /** The scenes of the live profiles keyed on `robotType` (null: the profile applies to any scene). */
  async scenesOfRobotType(db: Db, org: string, robotType: string): Promise<(string | null)[]> {
    const rows = await db
      .selectFrom('profiles')
      .select('scene_id')
      .where('organization_id', '=', org)
      .where('robot_type', '=', robotType)
      .where('deleted_at', 'is', null)
      .execute();
    return rows.map((r) => r.scene_id);
  }

  async list(db: Db, org: string, q: QaProfileListQuery, after?: string): Promise<ProfileRow[]> {
    let query = db
      .selectFrom('profiles')
      .selectAll()
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null);
    if (q.robot_type) query = query.where('robot_type', '=', q.robot_type);
    if (after) query = query.where('id', '<', after);
    return query
      .orderBy('id', 'desc')
      .limit(q.limit + 1)
      .execute();
  }

  /**
   * Changes a live profile of the organization in one statement; undefined when there is none (never
   * existed, another organization's, or deleted — also by a delete that committed while this waited).
   */
  async update(db: Db, org: string, id: string, patch: Updateable<ProfilesTable>): Promise<ProfileRow | undefined> {
    return db
      .updateTable('profiles')
      .set({ ...patch, updated_at: new Date() })
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }

  /** Deletes a live profile of the organization in one statement; its deletion time, or undefined as update. */
  async softDelete(db: Db, org: string, id: string): Promise<Date | undefined> {
    const row = await db
      .updateTable('profiles')
      .set({ deleted_at: new Date() })
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null)
      .returning('deleted_at')
      .executeTakeFirst();
    return row?.deleted_at ?? undefined;
  }

  /** The most specific live profile for an episode: robot type and scene, then robot type, then scene. */
  async bestFor(db: Db, org: string, robotType: string | null, sceneId: string): Promise<ProfileRow | undefined> {
    return db
      .selectFrom('profiles')
      .selectAll()
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null)
      .where((eb) =>
        robotType === null
          ? eb('robot_type', 'is', null)
          : eb.or([eb('robot_type', 'is', null), eb('robot_type', '=', robotType)]),
      )
      .where((eb) => eb.or([eb('scene_id', 'is', null), eb('scene_id', '=', sceneId)]))
      .orderBy(sql`(robot_type is not null and scene_id is not null)`, 'desc')
      .orderBy(sql`(robot_type is not null)`, 'desc')
      .limit(1)
      .executeTakeFirst();
  }
}
