#!/usr/bin/env node
// `npm run demo:upload`: the first thing to run after `npm start -- --seed` (in another terminal). The
// demo device (demo-arm-01) takes its next task with its device token, starts and finishes it, writes a
// small real MCAP (/camera, /joints) and its JSON sidecar, uploads them through the upload protocol
// (docs/devices.md) with a progress bar, completes, waits for the episode and prints it.
//
// It is `ferry demo-upload` of the built CLI (packages/cli), run with the data directory `npm start`
// uses: .data/, or FERRY_DATA_DIR. Options pass through: --gateway-url URL, --token fdt_…, --data-dir DIR.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const cliMain = path.join(root, 'packages/cli/dist/main.js');
if (!existsSync(cliMain)) {
  process.stderr.write(
    'demo:upload: the CLI is not built yet: run `npm start -- --seed` first (it builds everything).\n',
  );
  process.exit(1);
}
const args = process.argv.slice(2);
const dataDir = process.env.FERRY_DATA_DIR ? path.resolve(process.env.FERRY_DATA_DIR) : path.join(root, '.data');
if (!args.includes('--data-dir')) args.push('--data-dir', dataDir);
// Inherited stdio: the progress bar draws on the terminal itself.
const result = spawnSync(process.execPath, [cliMain, 'demo-upload', ...args], { stdio: 'inherit' });
process.exit(result.status ?? 1);
