/**
 * Names of schemas, streams and subjects for one installation. With an empty prefix the names are the
 * design's own (`production`, `PRODUCTION`, `production.evt.>`); with prefix `t1` they become `t1_production`,
 * `t1_PRODUCTION`, `t1.production.evt.>`, so test files and side-by-side installations never collide.
 */
export class Namespace {
  constructor(readonly prefix: string = '') {
    if (prefix && !/^[a-z][a-z0-9]{0,23}$/.test(prefix)) throw new Error(`invalid namespace ${prefix}`);
  }

  schema(service: string): string {
    return this.prefix ? `${this.prefix}_${service}` : service;
  }

  stream(name: string): string {
    return this.prefix ? `${this.prefix}_${name}` : name;
  }

  subject(subject: string): string {
    return this.prefix ? `${this.prefix}.${subject}` : subject;
  }

  /** The design's subject for a namespaced one, or undefined if it is not ours. */
  localSubject(subject: string): string | undefined {
    if (!this.prefix) return subject;
    return subject.startsWith(`${this.prefix}.`) ? subject.slice(this.prefix.length + 1) : undefined;
  }

  /** The design's stream name for a namespaced one, or undefined if it is not ours. */
  localStream(stream: string): string | undefined {
    if (!this.prefix) return stream;
    return stream.startsWith(`${this.prefix}_`) ? stream.slice(this.prefix.length + 1) : undefined;
  }
}
