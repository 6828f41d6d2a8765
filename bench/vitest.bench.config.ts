import { defineConfig } from 'vitest/config';
import base from '../vitest.config.js';

/**
 * Benchmarks are not tests: they print figures (as ratios to a baseline measured in the same run) and
 * write bench/results/*.json; they never assert on time. Vitest is used only as the TypeScript runner,
 * one file at a time so they do not compete for the two cores.
 */
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['bench/**/*.bench.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
