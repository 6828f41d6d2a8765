import {
  type Actor,
  type CreateSceneBody,
  type Page,
  type Scene,
  type SceneListQuery,
  sceneEvents,
  type UpdateSceneBody,
} from '@ferry/contracts';
import { DomainError, decodeCursor, isIdCursor, newId, notFound, Outbox, toPage } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';

import type { ProductionDB } from '../database.js';
import { SceneNameTaken, SceneRepository, toScene } from './scene.repository.js';

const nameTaken = (name: string) =>
  new DomainError('name_taken', `a scene named "${name}" already exists in this organization`, { field: 'name', name });

/** Scenes: the recording settings orders refer to. Commands run inside the caller's transaction. */
@Injectable()
export class SceneService {
  constructor(
    private readonly db: Kysely<ProductionDB>,
    private readonly scenes: SceneRepository,
    private readonly outbox: Outbox,
  ) {}

  async create(actor: Actor, body: CreateSceneBody, trx: Transaction<ProductionDB>): Promise<Scene> {
    const row = await this.scenes
      .insert(trx, { id: newId(), organization_id: actor.org, name: body.name, description: body.description ?? null })
      .catch((err) => {
        throw err instanceof SceneNameTaken ? nameTaken(body.name) : err;
      });
    const scene = toScene(row);
    await this.outbox.append(trx, sceneEvents.created, { scene }, { aggregateId: scene.id });
    return scene;
  }

  async get(actor: Actor, id: string): Promise<Scene> {
    const row = await this.scenes.find(this.db, actor.org, id);
    if (!row) throw notFound('Scene', id);
    return toScene(row);
  }

  async list(actor: Actor, query: SceneListQuery): Promise<Page<Scene>> {
    const after = query.cursor ? decodeCursor(query.cursor, isIdCursor).id : undefined;
    const rows = await this.scenes.list(this.db, actor.org, query, after);
    return toPage(rows, query.limit, toScene, (r) => ({ id: r.id }));
  }

  async update(actor: Actor, id: string, patch: UpdateSceneBody, trx: Transaction<ProductionDB>): Promise<Scene> {
    const current = await this.scenes.find(trx, actor.org, id, { lock: 'update' });
    if (!current) throw notFound('Scene', id);
    const changed = (Object.keys(patch) as (keyof UpdateSceneBody)[]).filter((k) => patch[k] !== current[k]);
    if (changed.length === 0) return toScene(current);
    const row = await this.scenes.update(trx, id, patch).catch((err) => {
      throw err instanceof SceneNameTaken ? nameTaken(patch.name ?? '') : err;
    });
    const scene = toScene(row);
    await this.outbox.append(trx, sceneEvents.updated, { scene, changed }, { aggregateId: id });
    return scene;
  }

  /**
   * Soft delete, refused while live orders use the scene. The scene row is locked first; order
   * creation takes a share lock on it, so a delete and a new order never both succeed.
   */
  async delete(actor: Actor, id: string, trx: Transaction<ProductionDB>): Promise<{ id: string; deleted_at: string }> {
    const current = await this.scenes.find(trx, actor.org, id, { lock: 'update' });
    if (!current) throw notFound('Scene', id);
    const refs = await this.scenes.liveOrderReferences(trx, id);
    if (refs.count > 0) {
      throw new DomainError('referenced', `scene ${id} is used by ${refs.count} live order(s); delete them first`, {
        referenced_by: refs.sample.map((o) => ({ type: 'order', id: o.id, name: o.name })),
        reference_count: refs.count,
      });
    }
    const row = await this.scenes.softDelete(trx, id);
    const deleted_at = row.deleted_at!.toISOString();
    await this.outbox.append(
      trx,
      sceneEvents.deleted,
      { scene_id: id, organization_id: actor.org, deleted_at },
      { aggregateId: id },
    );
    return { id, deleted_at };
  }
}
