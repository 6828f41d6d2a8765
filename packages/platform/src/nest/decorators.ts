import type { ConsumerDefinition, RpcDefinition } from '@ferry/contracts';
import { EventPattern, MessagePattern } from '@nestjs/microservices';

/** Answers the RPC `def` (its request is already parsed against the contract when the method runs). */
export const RpcHandler = (def: RpcDefinition): MethodDecorator => MessagePattern(def.subject);

/** Handles the events of durable consumer `def` inside the inbox transaction. */
export const EventsHandler = (def: ConsumerDefinition): MethodDecorator => EventPattern(def.durable) as MethodDecorator;
