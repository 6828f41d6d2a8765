import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const SERVICES = ['production', 'transfer', 'qa', 'gateway'];

/** Every module specifier a TypeScript file imports at run time (`import type` left out). */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
    if (!m[2]) found.push(m[3]!);
  }
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1]!);
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => path.join(dir, f));
}

/**
 * The CLI is a package: it must not load a service (STYLE.md, "a package below never imports one
 * above"). Its one seam into the services is their `./migrations` subpath, which is data.
 */
describe('the CLI’s imports', () => {
  it('reaches the services only through their ./migrations subpath', () => {
    const offending = sources(path.join(ROOT, 'packages/cli/src')).flatMap((file) =>
      runtimeImports(file)
        .filter((spec) => spec.startsWith('@ferry/'))
        .filter((spec) => !['@ferry/platform', '@ferry/contracts'].includes(spec))
        .filter((spec) => !SERVICES.some((s) => spec === `@ferry/${s}/migrations`))
        .map((spec) => `${path.relative(ROOT, file)}: ${spec}`),
    );
    expect(offending).toEqual([]);
  });

  it('gets from each service’s ./migrations subpath a module with no runtime import but node:url', () => {
    for (const service of SERVICES) {
      const manifest = JSON.parse(readFileSync(path.join(ROOT, `services/${service}/package.json`), 'utf8'));
      expect(manifest.exports['./migrations']).toMatchObject({ 'ferry-source': './src/migrations.ts' });
      expect(runtimeImports(path.join(ROOT, `services/${service}/src/migrations.ts`))).toEqual(['node:url']);
    }
  });
});
