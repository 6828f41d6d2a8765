import { z } from 'zod';

/** Settings every Ferry process reads. Each service extends this with its own. */
export const BaseConfig = z.object({
  /** Postgres connection string. */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).default('postgres://postgres@127.0.0.1:5432/ferry'),
  /** One or more NATS server URLs, comma separated. */
  NATS_URL: z
    .string()
    .default('nats://127.0.0.1:4222')
    .refine(
      (v) => v.split(',').every((u) => /^(nats|tls|wss?):\/\/[^\s/]+(:\d+)?\/?$/.test(u.trim())),
      'must be nats://host:port (comma separated for several)',
    ),
  /**
   * Prefix for schemas, streams and subjects, so several installations (or parallel test files)
   * share one Postgres and one NATS without seeing each other. Empty in production.
   */
  FERRY_NAMESPACE: z
    .string()
    .regex(/^([a-z][a-z0-9]{0,23})?$/, 'must be empty or a lowercase letter followed by up to 23 [a-z0-9]')
    .default(''),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Postgres connections per process. */
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /** Grace period for in-flight work on SIGTERM/SIGINT before the process exits anyway. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(20_000),
});
export type BaseConfig = z.infer<typeof BaseConfig>;

/** A configuration value failed validation; the message names every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly issues: readonly { variable: string; message: string }[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
  }
}

/** Parses the environment with `schema`; throws ConfigError naming each bad variable. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // Empty strings mean "unset" so `FOO= cmd` falls back to the default instead of failing oddly.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => ({ variable: issue.path.join('.') || '(root)', message: issue.message })),
  );
}
