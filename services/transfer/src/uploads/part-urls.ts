import { createHmac, timingSafeEqual } from 'node:crypto';
import type { UploadFileRole } from '@ferry/contracts';

export interface PartRef {
  uploadId: string;
  file: UploadFileRole;
  partNumber: number;
}

/**
 * Signed, expiring URLs for parts that go to our own endpoint (local blob store). The signature binds
 * the upload, the file, the part number and the expiry, so a URL cannot be pointed at another part or
 * upload, or used after it expires. HMAC-SHA256 with UPLOAD_SIGNING_SECRET, shared by every transfer
 * replica; the gateway does not hold the secret, it asks transfer to check (authorize_part).
 */
export class PartUrlSigner {
  constructor(private readonly secret: string) {}

  private mac(ref: PartRef, expires: number): string {
    return createHmac('sha256', this.secret)
      .update(`ferry-part\n${ref.uploadId}\n${ref.file}\n${ref.partNumber}\n${expires}`)
      .digest('base64url');
  }

  /** A URL relative to the API base (the gateway makes it absolute for the client). */
  url(ref: PartRef, expiresAt: Date): string {
    const expires = Math.floor(expiresAt.getTime() / 1000);
    return `/api/v1/uploads/${ref.uploadId}/parts/${ref.file}/${ref.partNumber}?expires=${expires}&signature=${this.mac(ref, expires)}`;
  }

  /** 'ok', or why not: a tampered or foreign URL is `invalid`, an old one `expired`. */
  check(ref: PartRef, expires: number, signature: string, now = Date.now()): 'ok' | 'invalid' | 'expired' {
    const expected = Buffer.from(this.mac(ref, expires));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid';
    if (expires * 1000 < now) return 'expired';
    return 'ok';
  }
}
