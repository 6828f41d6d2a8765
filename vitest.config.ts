import { defineConfig } from 'vitest/config';

// Workspace packages resolve to their TypeScript sources in tests: the `ferry-source` export condition,
// listed first in each package.json. The rest are Vite's defaults for server code minus `module`, which
// Node ignores: with it, packages such as the AWS SDK resolve to their bundler-only `dist-es` builds
// (extensionless imports) that Node then fails to load.
const conditions = ['ferry-source', 'node', 'development|production'];

export default defineConfig({
  // NestJS needs legacy decorators with metadata (as tsc emits them). Vite's oxc transform reads this
  // from a tsconfig only for files that tsconfig includes, and test files are not in the build.
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
