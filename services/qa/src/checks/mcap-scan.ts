import { loadDecompressors } from './decompressors.js';
import type { McapScan } from './mcap-scan.types.js';
import { McapScanner } from './mcap-scanner.js';
import { InlineDigest, type StreamDigest } from './stream-digest.js';
import { WorkerDigest } from './worker-digest.js';

export interface ScanProgress {
  bytesRead: number;
}

export interface ScanOptions {
  /** Aborting rejects the scan with the signal's reason at the next piece of input. */
  signal?: AbortSignal;
  /** Called at most every `progressIntervalMs` while bytes flow (a caller keeps a lease or a NATS ack alive). */
  onProgress?: (progress: ScanProgress) => void;
  /** Default 1,000 ms. */
  progressIntervalMs?: number;
  /** See McapScannerOptions.maxRecordBytes. Default 256 MiB. */
  maxRecordBytes?: number;
  /**
   * Where sha256 and the data-section CRC run: `worker` puts them on a worker thread (another core) beside the
   * parser; `inline` keeps everything on this thread. Default `auto`: a worker from `workerThresholdBytes` of
   * expected size on, where the worker's start-up (~30 ms) is repaid.
   */
  digest?: 'auto' | 'worker' | 'inline';
  /** Size the caller expects (for `digest: 'auto'`); unknown means inline. */
  expectedBytes?: number;
  /** Default 64 MiB. */
  workerThresholdBytes?: number;
}

/**
 * Reads the recording once, front to back, with memory bounded by its largest record: every check's facts, the
 * whole-file sha256 and byte count come out of this one pass. Rejects only when the source (or the signal)
 * throws; damage in the file is reported as findings.
 */
export async function scanMcap(source: AsyncIterable<Uint8Array>, options: ScanOptions = {}): Promise<McapScan> {
  const { signal, onProgress, progressIntervalMs = 1_000 } = options;
  signal?.throwIfAborted();
  const scanner = new McapScanner({ decompressors: await loadDecompressors(), maxRecordBytes: options.maxRecordBytes });
  const useWorker =
    options.digest === 'worker' ||
    ((options.digest ?? 'auto') === 'auto' &&
      (options.expectedBytes ?? 0) >= (options.workerThresholdBytes ?? 64 << 20));
  const digest: StreamDigest = useWorker ? new WorkerDigest() : new InlineDigest();
  let lastProgress = Date.now();
  try {
    for await (const piece of source) {
      signal?.throwIfAborted();
      scanner.push(piece);
      const pending = digest.update(piece, scanner.dataEndOffset);
      if (pending) await pending;
      if (onProgress && Date.now() - lastProgress >= progressIntervalMs) {
        lastProgress = Date.now();
        onProgress({ bytesRead: scanner.bytesReceived });
      }
    }
    signal?.throwIfAborted();
    return scanner.finish(await digest.finish());
  } catch (err) {
    digest.abort();
    throw err;
  }
}
