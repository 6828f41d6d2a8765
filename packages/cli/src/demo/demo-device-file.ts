import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * Where `ferry seed --data-dir DIR` leaves the demo device's credentials (`DIR/demo-device.json`) for
 * `npm run demo:upload`: `npm start -- --seed` passes its data directory (`.data/`, or FERRY_DATA_DIR).
 * Written 0600: it holds a device token.
 */
export const DEMO_DEVICE_FILE = 'demo-device.json';

export const DemoDevice = z.object({
  gateway_url: z.url(),
  org: z.uuid(),
  device_id: z.string(),
  device_token: z.string().startsWith('fdt_'),
  token_id: z.uuid(),
});
export type DemoDevice = z.infer<typeof DemoDevice>;

export function writeDemoDevice(dir: string, device: DemoDevice): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, DEMO_DEVICE_FILE);
  writeFileSync(file, `${JSON.stringify(DemoDevice.parse(device), null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** The saved demo device, or undefined when there is none (the seed has not run with this directory). */
export function readDemoDevice(dir: string): DemoDevice | undefined {
  const file = path.join(dir, DEMO_DEVICE_FILE);
  if (!existsSync(file)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    json = undefined;
  }
  const parsed = DemoDevice.safeParse(json);
  if (!parsed.success) throw new Error(`${file} is not what ferry seed writes; run npm start -- --seed again`);
  return parsed.data;
}
