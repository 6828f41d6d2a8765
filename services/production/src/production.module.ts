import { Module } from '@nestjs/common';
import { BatchRepository } from './batches/batch.repository.js';
import { BatchRpc } from './batches/batch.rpc.js';
import { BatchService } from './batches/batch.service.js';
import { BatchTransitions } from './batches/batch.transitions.js';
import { EpisodeEvents } from './episodes/episode.events.js';
import { EpisodeRepository } from './episodes/episode.repository.js';
import { EpisodeRpc } from './episodes/episode.rpc.js';
import { EpisodeService } from './episodes/episode.service.js';
import { OrderRepository } from './orders/order.repository.js';
import { OrderRpc } from './orders/order.rpc.js';
import { OrderService } from './orders/order.service.js';
import { SceneRepository } from './scenes/scene.repository.js';
import { SceneRpc } from './scenes/scene.rpc.js';
import { SceneService } from './scenes/scene.service.js';
import { TaskLocks } from './tasks/task.locks.js';
import { TaskOutcomes } from './tasks/task.outcomes.js';
import { TaskPlacement } from './tasks/task.placement.js';
import { TaskRepository } from './tasks/task.repository.js';
import { TaskRpc } from './tasks/task.rpc.js';
import { TaskService } from './tasks/task.service.js';
import { TaskTransitions } from './tasks/task.transitions.js';
import { WorkstationRepository } from './workstations/workstation.repository.js';
import { WorkstationRpc } from './workstations/workstation.rpc.js';
import { WorkstationService } from './workstations/workstation.service.js';

export const PRODUCTION_PROVIDERS = [
  SceneRepository,
  SceneService,
  OrderRepository,
  OrderService,
  WorkstationRepository,
  WorkstationService,
  BatchRepository,
  BatchTransitions,
  BatchService,
  TaskRepository,
  TaskTransitions,
  TaskLocks,
  TaskOutcomes,
  TaskPlacement,
  TaskService,
  EpisodeRepository,
  EpisodeService,
];

@Module({
  providers: PRODUCTION_PROVIDERS,
  controllers: [SceneRpc, OrderRpc, WorkstationRpc, BatchRpc, TaskRpc, EpisodeRpc, EpisodeEvents],
})
export class ProductionModule {}
