import {
  type deviceEvents,
  type EventPayload,
  type episodeEvents,
  isProtectedQaStatus,
  qaConsumers,
  type qaEpisodeEvents,
} from '@ferry/contracts';
import { DomainError, type EventContext, EventsHandler, inTransaction } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Kysely, type Transaction } from 'kysely';
import type { QaDB } from '../database.js';
import { ProfileRepository } from '../profiles/profile.repository.js';
import { type CheckRequest, QaRunner } from '../runs/qa-runner.js';
import { QaEpisodeRepository } from './qa-episode.repository.js';

type EpisodeCreated = EventPayload<typeof episodeEvents.created>;
type AutoCheckRequested = EventPayload<typeof qaEpisodeEvents.autoCheckRequested>;
type DeviceEvent = EventPayload<
  typeof deviceEvents.registered | typeof deviceEvents.updated | typeof deviceEvents.deleted
>;

/** Events QA reacts to. */
@Controller()
export class QaEpisodeHandlers {
  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly episodes: QaEpisodeRepository,
    private readonly profiles: ProfileRepository,
    private readonly runner: QaRunner,
  ) {}

  /** Projects a new episode in the inbox transaction (a redelivery changes nothing). */
  @EventsHandler(qaConsumers.episodes)
  async onEpisodeProjected(@Payload() payload: EpisodeCreated, @Ctx() ctx: EventContext<QaDB>): Promise<void> {
    await this.project(ctx.trx, payload.episode);
  }

  /**
   * Auto QA for every new episode: project it (whichever of the two consumers comes first), then check it. Runs outside any transaction (the check
   * streams the recording); the claim makes it exactly once. Another checker holding the episode →
   * `conflict`, retried after a delay (the claim lapses if that checker died); a storage error →
   * retried later too; an episode already past pending_qa → done.
   */
  @EventsHandler(qaConsumers.autoCheck)
  async onEpisodeCreated(@Payload() payload: EpisodeCreated): Promise<void> {
    const { episode } = payload;
    await inTransaction(this.db, (trx) => this.project(trx, episode));
    await this.autoCheck({ episodeId: episode.id, trigger: 'auto', requestedBy: 'auto-qa' });
  }

  /**
   * Auto QA that QA asked for again, handled like a new episode's: a stalled episode re-driven by the claim
   * sweeper (still pending_qa only), or one checked before its robot type was known (also over approved/failed).
   * No inbox row (the check runs outside any transaction): a repeat of the request finds the episode checked since
   * `requested_at` and does nothing.
   */
  @EventsHandler(qaConsumers.autoRecheck)
  async onAutoCheckRequested(@Payload() payload: AutoCheckRequested): Promise<void> {
    await this.autoCheck({
      episodeId: payload.episode_id,
      trigger: 'auto',
      requestedBy: `auto-qa:${payload.reason}`,
      recheck: payload.reason === 'robot_type_known',
      requestedAt: new Date(payload.requested_at),
    });
  }

  private async autoCheck(req: CheckRequest): Promise<void> {
    const outcome = await this.runner.check(req);
    if (outcome.kind === 'skipped' && (outcome.reason === 'already_running' || outcome.reason === 'claim_lost')) {
      throw new DomainError(
        'conflict',
        `episode ${req.episodeId} is being checked elsewhere; retrying after its lease`,
      );
    }
  }

  @EventsHandler(qaConsumers.episodeUpdated)
  async onEpisodeUpdated(
    @Payload() payload: EventPayload<typeof episodeEvents.updated>,
    @Ctx() ctx: EventContext<QaDB>,
  ): Promise<void> {
    const { episode } = payload;
    const result = await this.episodes.setLabels(ctx.trx, episode.id, episode.labels, new Date(episode.updated_at));
    if (result === 'missing') {
      // The update overtook the episode's creation (another consumer projects it): retried after a delay.
      throw new DomainError('conflict', `episode ${episode.id} is not projected yet; retrying`);
    }
  }

  /** The episode in QA's projection, with its device's robot type as QA knows it (a repeat changes nothing). */
  private async project(trx: Transaction<QaDB>, episode: EpisodeCreated['episode']): Promise<void> {
    // Taken by the device projection too: without it, a device event committing while this transaction runs would
    // miss this episode (not committed yet) and this one would miss its robot type (not committed yet either).
    await this.episodes.lockDevice(trx, episode.organization_id, episode.device_id);
    const device = await this.episodes.device(trx, episode.organization_id, episode.device_id);
    await this.episodes.project(trx, episode, device?.robot_type ?? null);
  }

  @EventsHandler(qaConsumers.devices)
  async onDevice(@Payload() payload: DeviceEvent, @Ctx() ctx: EventContext<QaDB>): Promise<void> {
    const { device } = payload;
    const deleted = 'deleted_at' in payload;
    await this.episodes.lockDevice(ctx.trx, device.organization_id, device.device_id);
    const applied = await this.episodes.upsertDevice(ctx.trx, {
      organization_id: device.organization_id,
      device_id: device.device_id,
      robot_type: device.robot_type,
      expected_topics: device.expected_topics,
      deleted,
      version: new Date(deleted ? payload.deleted_at : device.updated_at),
    });
    // No robot type to give (or an older event): the episodes that lack one keep lacking it, nothing to rewrite.
    if (!applied || device.robot_type === null) return;
    const filled = await this.episodes.fillRobotType(
      ctx.trx,
      device.organization_id,
      device.device_id,
      device.robot_type,
    );
    if (filled.length === 0) return;
    // Episodes a check already read without the robot type (auto QA can overtake this event: the streams differ)
    // had their profile check skipped, or judged by a scene's profile: checked again when a profile of this robot
    // type applies to them. Pending ones need nothing: their check reads the robot type when it claims them.
    const scenes = await this.profiles.scenesOfRobotType(ctx.trx, device.organization_id, device.robot_type);
    // A check that claims an episode from this moment on reads its robot type (this transaction holds the episodes'
    // rows until it commits), so a run started at or after `requested_at` answers the request. The clock has
    // microseconds, the event milliseconds: rounded up, a check claiming within this millisecond but before the fill
    // is never taken for the answer (at worst one claiming just after it checks again).
    const requestedAt = new Date((await this.episodes.now(ctx.trx)).getTime() + 1);
    for (const e of filled) {
      const readWithout =
        e.qa_status === 'approved' ||
        e.qa_status === 'failed' ||
        (e.qa_status === 'qa_running' && !isProtectedQaStatus(e.status_before_claim ?? 'pending_qa'));
      if (readWithout && scenes.some((scene) => scene === null || scene === e.scene_id)) {
        await this.runner.requestAutoCheck(ctx.trx, e, 'robot_type_known', 0, requestedAt);
      }
    }
  }
}
