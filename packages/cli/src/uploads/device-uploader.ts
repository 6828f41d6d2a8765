import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PartTarget, Upload, UploadFileRole } from '@ferry/contracts';

export interface DeclaredUploadFile {
  role: UploadFileRole;
  size_bytes: number;
  sha256: string;
}

/** Opens a fresh stream of bytes [start, start + length) of one file. */
export type ByteSource = (start: number, length: number) => Readable;

export interface DeviceUploaderOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:3000`. */
  baseUrl: string;
  /** The device token (`fdt_…`). */
  token: string;
  /** Parts sent at once. Default 4. */
  concurrency?: number;
  /** Attempts per part before giving up (a cut connection, a 5xx). Default 5. */
  attempts?: number;
  /** Called as bytes leave, for a progress bar. */
  onProgress?: (sentBytes: number) => void;
}

export class UploadHttpError extends Error {
  override readonly name = 'UploadHttpError';
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(
      `HTTP ${status}: ${typeof body === 'object' && body && 'detail' in body ? (body as { detail: string }).detail : JSON.stringify(body)}`,
    );
  }
}

/**
 * The device side of the upload protocol (docs/devices.md): open, PUT every missing part (in
 * parallel, retried, resumable), confirm each with its ETag, complete, then wait for the outcome.
 * One client whatever the store: part URLs may point at the gateway or straight at S3.
 */
export class DeviceUploader {
  constructor(private readonly options: DeviceUploaderOptions) {}

  async api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(new URL(`/api/v1${path}`, this.options.baseUrl), {
      method,
      headers: {
        authorization: `Bearer ${this.options.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const parsed = text ? (JSON.parse(text) as T) : (undefined as T);
    if (res.status >= 400) throw new UploadHttpError(res.status, parsed);
    return { status: res.status, body: parsed };
  }

  open(taskId: string, files: readonly DeclaredUploadFile[]): Promise<{ status: number; body: Upload }> {
    return this.api<Upload>('POST', '/uploads', { task_id: taskId, files });
  }

  async get(id: string): Promise<Upload> {
    return (await this.api<Upload>('GET', `/uploads/${id}`)).body;
  }

  /**
   * PUTs one part's bytes to its target. `cutAfterBytes` (tests) destroys the request after that many
   * bytes, as a flaky network would. Resolves with the ETag the target answered.
   */
  putPart(target: PartTarget, source: Readable, options: { cutAfterBytes?: number } = {}): Promise<string> {
    const url = new URL(target.url);
    const client = url.protocol === 'https:' ? https : http;
    // Our own endpoint takes the device token too; a presigned S3 URL carries its own signature.
    const ours = url.origin === new URL(this.options.baseUrl).origin;
    return new Promise((resolve, reject) => {
      const req = client.request(url, {
        method: target.method,
        headers: {
          ...target.headers,
          'content-length': String(target.size_bytes),
          ...(ours ? { authorization: `Bearer ${this.options.token}` } : {}),
        },
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 400) {
            let body: unknown = text;
            try {
              body = JSON.parse(text);
            } catch {
              // not JSON (an S3 XML error)
            }
            reject(new UploadHttpError(res.statusCode ?? 0, body));
            return;
          }
          resolve(String(res.headers.etag ?? '').replace(/^"|"$/g, ''));
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      let sent = 0;
      source.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        this.options.onProgress?.(chunk.length);
        if (options.cutAfterBytes !== undefined && sent >= options.cutAfterBytes) {
          source.destroy();
          req.destroy(new Error('connection cut (test)'));
        }
      });
      pipeline(source, req).catch(reject);
    });
  }

  async confirm(uploadId: string, target: PartTarget, etag: string): Promise<Upload> {
    return (
      await this.api<Upload>('POST', `/uploads/${uploadId}/parts`, {
        file: target.file,
        part_number: target.part_number,
        etag,
      })
    ).body;
  }

  /** Offset of a part within its file: parts are cut at multiples of the upload's part size. */
  static offsetOf(upload: Upload, target: PartTarget): number {
    return (target.part_number - 1) * upload.part_size;
  }

  /**
   * Sends every part the upload still misses (asking for fresh targets first), `concurrency` at a time,
   * retrying each a few times; confirms each with its ETag. Resumable: call it again after any failure.
   */
  async sendMissing(uploadId: string, sources: Partial<Record<UploadFileRole, ByteSource>>): Promise<Upload> {
    let upload = await this.get(uploadId);
    const queue = [...(upload.parts ?? [])];
    const attempts = this.options.attempts ?? 5;
    const worker = async () => {
      for (let target = queue.shift(); target; target = queue.shift()) {
        const source = sources[target.file];
        if (!source) throw new Error(`no bytes for file ${target.file}`);
        for (let attempt = 1; ; attempt++) {
          try {
            const etag = await this.putPart(target, source(DeviceUploader.offsetOf(upload, target), target.size_bytes));
            await this.confirm(uploadId, target, etag);
            break;
          } catch (err) {
            const status = err instanceof UploadHttpError ? err.status : 0;
            if (attempt >= attempts || (status >= 400 && status < 500 && status !== 408 && status !== 429)) throw err;
            await new Promise((r) => setTimeout(r, Math.min(8_000, 250 * 2 ** attempt)));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: this.options.concurrency ?? 4 }, worker));
    upload = await this.get(uploadId);
    return upload;
  }

  async complete(uploadId: string): Promise<{ status: number; body: Upload }> {
    return this.api<Upload>('POST', `/uploads/${uploadId}/complete`);
  }

  /** Polls until the upload is acknowledged (with its episode), rejected, failed or expired. */
  async waitForOutcome(uploadId: string, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<Upload> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    for (;;) {
      const upload = await this.get(uploadId);
      if (['acknowledged', 'rejected', 'failed', 'expired'].includes(upload.status)) return upload;
      if (Date.now() > deadline) throw new Error(`upload ${uploadId} is still ${upload.status}`);
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
    }
  }
}
