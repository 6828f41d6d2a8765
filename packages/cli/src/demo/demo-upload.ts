import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Task, Upload } from '@ferry/contracts';
import { CliError } from '../cli-error.js';
import { DeviceUploader, UploadHttpError } from '../uploads/device-uploader.js';
import { DEMO_DEVICE_FILE, readDemoDevice } from './demo-device-file.js';
import { demoRecording } from './demo-recording.js';
import { ProgressBar } from './progress-bar.js';

export interface DemoUploadOptions {
  /** Where `npm start -- --seed` left demo-device.json; demo recordings are kept here too. */
  dataDir: string;
  /** Overrides the gateway URL of demo-device.json. */
  gatewayUrl?: string;
  /** Overrides the device token of demo-device.json. */
  token?: string;
  /** Where the story is told (stdout); the progress bar draws on it too. */
  out: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  /** How long to wait for the episode. Default 120 s. */
  timeoutMs?: number;
}

export interface DemoUploadResult {
  task_id: string;
  upload: Upload;
  episode_id: string;
}

/** Where a device picks up again: an upload in flight first, then recording, then a new task. */
const PICK_ORDER: Task['status'][] = ['uploading', 'in_progress', 'ready', 'pending'];

/** Where the gateway URL and the device token came from, for messages. */
function sourcesOf(options: DemoUploadOptions): Sources {
  const file = `from ${path.join(options.dataDir, DEMO_DEVICE_FILE)}`;
  return { url: options.gatewayUrl ? 'from --gateway-url' : file, token: options.token ? 'from --token' : file };
}

/**
 * The first thing to run after `npm start -- --seed`: the demo device does what a robot does — finds
 * its task with its device token, starts and finishes recording, writes a real MCAP and its sidecar,
 * uploads them through the upload protocol (docs/devices.md) with a progress bar, completes, and waits
 * for the episode.
 */
export async function demoUpload(options: DemoUploadOptions): Promise<DemoUploadResult> {
  const saved = readDemoDevice(options.dataDir);
  const gatewayUrl = options.gatewayUrl ?? saved?.gateway_url;
  const token = options.token ?? saved?.device_token;
  if (!gatewayUrl || !token) {
    throw new CliError(
      `no demo device in ${options.dataDir}: start the system with \`npm start -- --seed\` first (it registers ` +
        `demo-arm-01 and writes ${DEMO_DEVICE_FILE} there), then run \`npm run demo:upload\` in another terminal ` +
        '(or pass --gateway-url URL --token fdt_…)',
    );
  }
  const say = (line = '') => options.out.write(`${line}\n`);
  const uploader = new DeviceUploader({ baseUrl: gatewayUrl, token, concurrency: 4 });
  /** The device API, with its failures said in one line. */
  const api = async <T>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> => {
    try {
      return await uploader.api<T>(method, route, body);
    } catch (err) {
      throw explain(err, gatewayUrl, sourcesOf(options));
    }
  };

  const tasks = await api<{ items: Task[] }>('GET', `/device/tasks?status=${PICK_ORDER.join(',')}&limit=200`);
  const task = PICK_ORDER.map((s) => tasks.body.items.find((t) => t.status === s)).find(Boolean);
  if (!task) {
    throw new CliError(
      'the demo device has no task left to record (its batch is done or was cancelled): restart ' +
        '`npm start -- --seed` — the seed then opens a new batch of 10 tasks — and run this again',
    );
  }
  say(`task ${task.id} (${task.status}${task.group ? `, group ${task.group}` : ''})`);
  if (task.status === 'pending' || task.status === 'ready') {
    await api('POST', `/tasks/${task.id}/start`, {});
    say('  started recording          POST /tasks/{id}/start → in_progress');
  }
  const recording = await demoRecording(path.join(options.dataDir, 'demo-recordings'), task.id);
  say(
    `  ${recording.reused ? 'found the recording' : 'recorded'}  ${recording.mcap.path}  ` +
      `(${recording.mcap.size} bytes, ${recording.messageCount} messages on ${recording.topics.join(', ')} ` +
      `over ${recording.durationSec.toFixed(1)} s; sidecar ${recording.sidecar.size} bytes)`,
  );
  if (task.status !== 'uploading') {
    await api('POST', `/tasks/${task.id}/finish`, {});
    say('  finished recording         POST /tasks/{id}/finish → uploading');
  }

  const opened = await api<Upload>('POST', '/uploads', {
    task_id: task.id,
    files: [
      { role: 'mcap', size_bytes: recording.mcap.size, sha256: recording.mcap.sha256 },
      { role: 'sidecar', size_bytes: recording.sidecar.size, sha256: recording.sidecar.sha256 },
    ],
  });
  const upload = opened.body;
  const missing = upload.parts ?? [];
  const total = missing.reduce((sum, p) => sum + p.size_bytes, 0);
  say(
    opened.status === 201
      ? `  opened upload ${upload.id}   POST /uploads → 201, ${missing.length} part(s) of at most ${upload.part_size} bytes`
      : `  resuming upload ${upload.id} POST /uploads → 200, ${missing.length} part(s) still missing`,
  );

  const bar = new ProgressBar({ total, out: options.out, label: '  upload' });
  const sender = new DeviceUploader({
    baseUrl: gatewayUrl,
    token,
    concurrency: 4,
    onProgress: (bytes) => bar.add(bytes),
  });
  const files = { mcap: recording.mcap.path, sidecar: recording.sidecar.path };
  try {
    await sender.sendMissing(upload.id, {
      mcap: (start, length) => createReadStream(files.mcap, { start, end: start + length - 1 }),
      sidecar: (start, length) => createReadStream(files.sidecar, { start, end: start + length - 1 }),
    });
  } catch (err) {
    throw explain(err, gatewayUrl, sourcesOf(options), 'run it again: only the missing parts are sent');
  }
  bar.finish();

  const completed = await api<Upload>('POST', `/uploads/${upload.id}/complete`);
  say(`  completed                  POST /uploads/{id}/complete → ${completed.status} ${completed.body.status}`);
  const done = await uploader.waitForOutcome(upload.id, { timeoutMs: options.timeoutMs ?? 120_000 });
  if (done.status !== 'acknowledged' || !done.episode_id) {
    const why = done.rejection ? `${done.rejection.reason}: ${done.rejection.detail}` : done.status;
    throw new CliError(`upload ${done.id} ended ${done.status} (${why})`);
  }
  say(`  acknowledged               GET /uploads/{id} → acknowledged`);
  say();
  say(`Episode ${done.episode_id}`);
  say(`  task     ${task.id}`);
  say(`  upload   ${done.id} (device ${done.device_id})`);
  for (const f of done.files) {
    say(`  ${f.role.padEnd(8)} ${f.object_key}  ${f.size_bytes} bytes  sha256 ${f.sha256}`);
  }
  if (done.recording) {
    const r = done.recording;
    say(
      `  recording ${r.duration_sec ?? '?'} s, ${r.message_count ?? '?'} messages, topics ${r.topics?.join(', ') ?? '-'}`,
    );
  }
  say();
  say(
    `See it as an operator (TOKEN: the admin token npm start printed, also in ${path.join(options.dataDir, 'demo-token')}):`,
  );
  say(`  curl -s -H "Authorization: Bearer $TOKEN" ${gatewayUrl}/api/v1/episodes/${done.episode_id}`);
  return { task_id: task.id, upload: done, episode_id: done.episode_id };
}

/** An HTTP or network failure of the device API as one line that says what to do. */
interface Sources {
  url: string;
  token: string;
}

function explain(err: unknown, gatewayUrl: string, sources: Sources, retry = ''): Error {
  if (err instanceof UploadHttpError) {
    if (err.status === 401) {
      return new CliError(
        `the gateway refused the device token (${sources.token}): it was revoked, or the database was reset; ` +
          'run `npm start -- --seed` again for a new one',
      );
    }
    return new CliError(`${err.message}${retry ? `; ${retry}` : ''}`, { cause: err });
  }
  // fetch fails with a TypeError whose cause is the socket's error (an AggregateError when every
  // address of the host refused); a part PUT (node:http) fails with the socket's error itself.
  const cause = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
  const network = err instanceof TypeError && err.message === 'fetch failed';
  const code = cause?.code ?? cause?.errors?.[0]?.code ?? (err as { code?: string }).code;
  if (network || (code && /^E(CONNREFUSED|CONNRESET|HOSTUNREACH|NETUNREACH|TIMEDOUT)$|^ENOTFOUND$/.test(code))) {
    return new CliError(
      `nothing answers at ${gatewayUrl} (${code ?? cause?.message ?? 'no connection'}; the URL is ${sources.url}): ` +
        `is \`npm start\` running?${retry ? ` Then ${retry}.` : ''}`,
      { cause: err },
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}
