import { describe, expect, it } from 'vitest';
import { PartUrlSigner } from './part-urls.js';

const ref = { uploadId: '01900000-0000-7000-8000-000000000001', file: 'mcap' as const, partNumber: 3 };

function parse(url: string) {
  const u = new URL(url, 'http://x');
  return {
    path: u.pathname,
    expires: Number(u.searchParams.get('expires')),
    signature: u.searchParams.get('signature')!,
  };
}

describe('PartUrlSigner', () => {
  const signer = new PartUrlSigner('s'.repeat(40));
  const expiresAt = new Date('2030-01-01T00:00:00Z');

  it('accepts its own URL until it expires, and says expired after', () => {
    const { path, expires, signature } = parse(signer.url(ref, expiresAt));
    expect(path).toBe(`/api/v1/uploads/${ref.uploadId}/parts/mcap/3`);
    expect(signer.check(ref, expires, signature, expiresAt.getTime() - 1)).toBe('ok');
    expect(signer.check(ref, expires, signature, expiresAt.getTime() + 1_000)).toBe('expired');
  });

  it('refuses the signature for another part, file, upload, expiry or secret', () => {
    const { expires, signature } = parse(signer.url(ref, expiresAt));
    const now = expiresAt.getTime() - 60_000;
    expect(signer.check({ ...ref, partNumber: 4 }, expires, signature, now)).toBe('invalid');
    expect(signer.check({ ...ref, file: 'sidecar' }, expires, signature, now)).toBe('invalid');
    expect(signer.check({ ...ref, uploadId: '01900000-0000-7000-8000-000000000002' }, expires, signature, now)).toBe(
      'invalid',
    );
    expect(signer.check(ref, expires + 3600, signature, now)).toBe('invalid');
    expect(new PartUrlSigner('t'.repeat(40)).check(ref, expires, signature, now)).toBe('invalid');
    expect(signer.check(ref, expires, `${signature}x`, now)).toBe('invalid');
  });
});
