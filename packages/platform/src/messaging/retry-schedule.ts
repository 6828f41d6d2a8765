/** Default redelivery delays after a failed attempt (attempt 1 → 1 s, …), DESIGN §3 "growing schedule". */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = [
  1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000,
];

/** Delay before the next delivery after `deliveryCount` failed ones, with ±20 % jitter. */
export function retryDelay(schedule: readonly number[], deliveryCount: number, random = Math.random): number {
  const base = schedule[Math.min(Math.max(deliveryCount, 1), schedule.length) - 1] ?? 1_000;
  return Math.round(base * (0.8 + 0.4 * random()));
}
