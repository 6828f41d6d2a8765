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

  it('declares in package.json and tsconfig.json exactly the workspace packages it imports (a service for its ./migrations)', () => {
    const cli = path.join(ROOT, 'packages/cli');
    const imported = new Set(
      sources(path.join(cli, 'src')).flatMap((file) =>
        [...readFileSync(file, 'utf8').matchAll(/(?:from\s+|import\(\s*)['"](@ferry\/[a-z-]+)(?:\/[a-z-]+)?['"]/g)].map(
          (m) => m[1]!,
        ),
      ),
    );
    const manifest = JSON.parse(readFileSync(path.join(cli, 'package.json'), 'utf8'));
    const declared = Object.keys(manifest.dependencies).filter((name) => name.startsWith('@ferry/'));
    expect(declared.sort()).toEqual([...imported].sort());
    // tsconfig.json allows comments: drop the comment lines before parsing it.
    const tsconfig = JSON.parse(
      readFileSync(path.join(cli, 'tsconfig.json'), 'utf8')
        .split('\n')
        .filter((line) => !line.trim().startsWith('//'))
        .join('\n'),
    );
    const referenced = (tsconfig.references as { path: string }[]).map((r) => `@ferry/${path.basename(r.path)}`);
    expect(referenced.sort()).toEqual([...imported].sort());
  });
});
