import {
  type Actor,
  type Page,
  type QaProfileListQuery,
  type QaProfileRecord,
  type qaProfileRpc,
  type RpcRequest,
} from '@ferry/contracts';
import { DomainError, decodeCursor, isIdCursor, newId, notFound, toPage } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import type { QaDB } from '../database.js';
import { ProfileRepository, ProfileScopeTaken, toProfile } from './profile.repository.js';

/** QA profiles: content rules per robot type and/or scene, checked by profile@1 (admins write them). */
@Injectable()
export class ProfileService {
  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly profiles: ProfileRepository,
  ) {}

  private assertAdmin(actor: Actor): void {
    if (actor.role !== 'admin') throw new DomainError('forbidden', 'only an admin may change QA profiles');
  }

  async create(
    actor: Actor,
    body: RpcRequest<typeof qaProfileRpc.create>['profile'],
    trx: Transaction<QaDB>,
  ): Promise<QaProfileRecord> {
    this.assertAdmin(actor);
    const row = await this.profiles
      .insert(trx, {
        id: newId(),
        organization_id: actor.org,
        name: body.name,
        robot_type: body.robot_type ?? null,
        scene_id: body.scene_id ?? null,
        rules: JSON.stringify(body.rules),
        updated_at: new Date(),
      })
      .catch((err) => {
        if (err instanceof ProfileScopeTaken) {
          throw new DomainError('name_taken', 'a live profile already applies to this robot type and scene', {
            robot_type: body.robot_type ?? null,
            scene_id: body.scene_id ?? null,
          });
        }
        throw err;
      });
    return toProfile(row);
  }

  async get(actor: Actor, id: string): Promise<QaProfileRecord> {
    const row = await this.profiles.find(this.db, actor.org, id);
    if (!row) throw notFound('Profile', id);
    return toProfile(row);
  }

  async list(actor: Actor, query: QaProfileListQuery): Promise<Page<QaProfileRecord>> {
    const after = query.cursor ? decodeCursor(query.cursor, isIdCursor).id : undefined;
    const rows = await this.profiles.list(this.db, actor.org, query, after);
    return toPage(rows, query.limit, toProfile, (r) => ({ id: r.id }));
  }

  async update(
    actor: Actor,
    id: string,
    patch: RpcRequest<typeof qaProfileRpc.update>['patch'],
    trx: Transaction<QaDB>,
  ): Promise<QaProfileRecord> {
    this.assertAdmin(actor);
    // One statement, not a read and then a write: a delete committing in between must win (404), not be undone.
    const row = await this.profiles.update(trx, actor.org, id, {
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.rules !== undefined ? { rules: JSON.stringify(patch.rules) } : {}),
    });
    if (!row) throw notFound('Profile', id);
    return toProfile(row);
  }

  /** Soft-deletes a live profile; a profile already deleted (a repeated or racing delete) is 404. */
  async delete(actor: Actor, id: string, trx: Transaction<QaDB>): Promise<{ id: string; deleted_at: string }> {
    this.assertAdmin(actor);
    const deletedAt = await this.profiles.softDelete(trx, actor.org, id);
    if (!deletedAt) throw notFound('Profile', id);
    return { id, deleted_at: deletedAt.toISOString() };
  }
}
