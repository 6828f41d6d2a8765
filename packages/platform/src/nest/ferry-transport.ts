import type { ConsumerDefinition, ConsumerTransaction, RpcDefinition } from '@ferry/contracts';
import { ArgumentsHost, Catch, type LoggerService, type RpcExceptionFilter } from '@nestjs/common';
import { type CustomTransportStrategy, type MessageHandler, Server } from '@nestjs/microservices';
import { lastValueFrom, type Observable, throwError } from 'rxjs';
import type { Logger } from '../logging/logger.js';
import type { EventHandler, InboxConsumer } from '../messaging/inbox-consumer.js';
import type { RpcHandler, RpcServer } from '../messaging/rpc-server.js';

export interface FerryTransportOptions {
  rpc: RpcServer;
  /** The RPC contracts this service may answer; a @MessagePattern for anything else fails the boot. */
  rpcs: readonly RpcDefinition[];
  /** The durable consumers this service owns; an @EventPattern for anything else fails the boot. */
  consumers: readonly ConsumerDefinition[];
  createConsumer(def: ConsumerDefinition, handler: EventHandler<any, ConsumerTransaction>): InboxConsumer;
}

/**
 * Binds Nest handlers to our messaging: `@MessagePattern(subject)` to an RPC subscription and
 * `@EventPattern(durable)` to an inbox consumer. Unlike Nest's own event dispatch, every handler is
 * awaited and its errors reach the transport, which acks only after the transaction commits.
 */
export class FerryTransport extends Server implements CustomTransportStrategy {
  private readonly consumers: InboxConsumer[] = [];

  constructor(private readonly options: FerryTransportOptions) {
    super();
  }

  private static invoke(handler: MessageHandler) {
    return async (data: unknown, ctx: unknown) => {
      const result = await handler(data, ctx);
      // Nest wraps results (and errors, via the exception filter) in Observables.
      return isObservable(result) ? lastValueFrom(result, { defaultValue: undefined }) : result;
    };
  }

  async listen(callback: (err?: unknown) => void): Promise<void> {
    try {
      for (const [pattern, handler] of this.getHandlers()) {
        if (handler.isEventHandler) {
          const def = this.options.consumers.find((c) => c.durable === pattern);
          if (!def) throw new Error(`@EventPattern(${pattern}) names no consumer of this service`);
          this.consumers.push(
            this.options.createConsumer(def, FerryTransport.invoke(handler) as EventHandler<any, ConsumerTransaction>),
          );
        } else {
          const def = this.options.rpcs.find((r) => r.subject === pattern);
          if (!def) throw new Error(`@MessagePattern(${pattern}) names no RPC contract of this service`);
          this.options.rpc.register(def, FerryTransport.invoke(handler) as RpcHandler);
        }
      }
      this.options.rpc.start();
      await Promise.all(this.consumers.map((c) => c.start()));
      callback();
    } catch (err) {
      callback(err);
    }
  }

  /** Stops taking work and waits for in-flight handlers (DESIGN §9 drain). */
  async close(): Promise<void> {
    await Promise.all([this.options.rpc.stop(), ...this.consumers.map((c) => c.stop())]);
  }

  on(): never {
    throw new Error('FerryTransport does not emit events');
  }

  unwrap<T>(): T {
    throw new Error('FerryTransport has no underlying client to unwrap');
  }
}

function isObservable(value: unknown): value is Observable<unknown> {
  return !!value && typeof (value as Observable<unknown>).subscribe === 'function';
}

/**
 * Nest's default RPC filter turns every non-RpcException into "Internal server error", which would
 * erase our DomainErrors. This filter rethrows the original so the transport decides.
 */
@Catch()
export class PassThroughRpcFilter implements RpcExceptionFilter {
  catch(exception: unknown, _host: ArgumentsHost): Observable<never> {
    return throwError(() => exception);
  }
}

/** Nest's own log lines, as JSON through the service's pino logger. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ context }, String(message));
  }
}
