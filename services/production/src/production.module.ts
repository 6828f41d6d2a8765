import { Module } from '@nestjs/common';
import { OrderRepository } from './orders/order.repository.js';
import { OrderRpc } from './orders/order.rpc.js';
import { OrderService } from './orders/order.service.js';
import { SceneRepository } from './scenes/scene.repository.js';
import { SceneRpc } from './scenes/scene.rpc.js';
import { SceneService } from './scenes/scene.service.js';

@Module({
  providers: [SceneRepository, SceneService, OrderRepository, OrderService],
  controllers: [SceneRpc, OrderRpc],
})
export class ProductionModule {}
