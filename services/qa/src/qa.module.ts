import { Module } from '@nestjs/common';
import { BulkRunRepository } from './bulk/bulk-run.repository.js';
import { BulkRunRpc } from './bulk/bulk-run.rpc.js';
import { BulkRunService } from './bulk/bulk-run.service.js';
import { BulkRunWorker } from './bulk/bulk-run.worker.js';
import { QaEpisodeHandlers } from './episodes/qa-episode.handlers.js';
import { QaEpisodeRepository } from './episodes/qa-episode.repository.js';
import { QaEpisodeRpc } from './episodes/qa-episode.rpc.js';
import { QaEpisodeService } from './episodes/qa-episode.service.js';
import { ProfileRepository } from './profiles/profile.repository.js';
import { ProfileRpc } from './profiles/profile.rpc.js';
import { ProfileService } from './profiles/profile.service.js';
import { ClaimSweeper } from './runs/claim-sweeper.js';
import { QaRunRepository } from './runs/qa-run.repository.js';
import { QaRunner } from './runs/qa-runner.js';

export const QA_PROVIDERS = [
  QaEpisodeRepository,
  QaRunRepository,
  ProfileRepository,
  ProfileService,
  QaRunner,
  QaEpisodeService,
  ClaimSweeper,
  BulkRunRepository,
  BulkRunService,
  BulkRunWorker,
];

@Module({
  providers: QA_PROVIDERS,
  controllers: [QaEpisodeRpc, QaEpisodeHandlers, ProfileRpc, BulkRunRpc],
})
export class QaModule {}
