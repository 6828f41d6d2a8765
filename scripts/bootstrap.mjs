#!/usr/bin/env node
// Makes a fresh clone usable with nothing but Node: installs the workspace with the pnpm version that
// package.json pins (fetched from the npm registry when it is not on the PATH), then builds it.
// Runs before `npm start` and `npm test`; when everything is current it costs one incremental `tsc -b`.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');

function step(message) {
  process.stdout.write(`[bootstrap] ${message}\n`);
}

function fail(message) {
  process.stderr.write(`[bootstrap] error: ${message}\n`);
  process.exit(1);
}

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.error) return { ok: false, reason: result.error.message };
  if (result.status !== 0) return { ok: false, reason: `exit code ${result.status ?? result.signal}` };
  return { ok: true };
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 11)) {
  fail(`Node ${process.versions.node} is too old: Ferry needs Node 20.11 or newer.`);
}

const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
// "pnpm@12.21.0" or "pnpm@12.21.0+sha512.…": the version is what npm exec needs.
const pnpmVersion = /^pnpm@([^+]+)/.exec(pkg.packageManager ?? '')?.[1];
if (!pnpmVersion) fail('package.json has no "packageManager": "pnpm@<version>" field.');

// pnpm 12 wants to record itself (`packageManagerDependencies`) in the lockfile and refuses a frozen
// install without that entry, which it cannot resolve (it looks up an @pnpm/exe build for every
// platform and one is not published). This script pins the version instead, so pnpm's own version
// management is off. A run without a terminal must not stop to ask before rebuilding node_modules.
const pnpmEnv = {
  ...process.env,
  pnpm_config_pm_on_fail: 'ignore',
  pnpm_config_confirm_modules_purge: 'false',
  npm_config_update_notifier: 'false',
};

function pnpmCommand() {
  const global = spawnSync('pnpm', ['--version'], { cwd: root, env: pnpmEnv, encoding: 'utf8' });
  if (!global.error && global.status === 0 && global.stdout.trim().split('\n').at(-1) === pnpmVersion) {
    return { command: 'pnpm', prefix: [], label: `pnpm ${pnpmVersion}` };
  }
  // npm caches the package after the first download; no global install, no root needed.
  return {
    command: process.platform === 'win32' ? 'npm.cmd' : 'npm',
    prefix: ['exec', '--yes', `pnpm@${pnpmVersion}`, '--'],
    label: `pnpm ${pnpmVersion} via npm exec`,
  };
}

const modulesYaml = path.join(root, 'node_modules', '.modules.yaml');
const lockfile = path.join(root, 'pnpm-lock.yaml');
const installed = mtime(modulesYaml);
const locked = mtime(lockfile);
if (locked === undefined) fail('pnpm-lock.yaml is missing.');

if (installed === undefined || installed < locked) {
  const pnpm = pnpmCommand();
  step(
    `${installed === undefined ? 'installing' : 'pnpm-lock.yaml changed; reinstalling'} the workspace (${pnpm.label})`,
  );
  const result = run(pnpm.command, [...pnpm.prefix, 'install', '--frozen-lockfile'], { env: pnpmEnv });
  if (!result.ok) {
    fail(
      `pnpm install failed (${result.reason}). If package.json changed, update the lockfile with ` +
        `\`npm exec pnpm@${pnpmVersion} -- install\` and commit it.`,
    );
  }
  // pnpm leaves .modules.yaml alone when nothing changed; touch it so the next run skips the install.
  if (existsSync(modulesYaml)) {
    const now = new Date();
    utimesSync(modulesYaml, now, now);
  }
} else {
  step('workspace installed');
}

const tsc = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'tsc.cmd' : 'tsc');
if (!existsSync(tsc)) fail('node_modules/.bin/tsc is missing: delete node_modules and run again.');
step('building (tsc -b)');
const started = Date.now();
const build = run(tsc, ['-b']);
if (!build.ok) fail(`the TypeScript build failed (${build.reason}); see the errors above.`);
step(`built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
