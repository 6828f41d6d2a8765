/**
 * Which methods a path answers, for `405 Method Not Allowed` with `Allow` (RFC 9110 §15.5.6): Hono
 * only knows that nothing matched. Patterns are Hono paths (`/orders/:id`, `/x/:p{literal}`).
 */
export class MethodTable {
  private readonly entries: { method: string; pattern: RegExp }[] = [];

  add(method: string, honoPath: string): void {
    const pattern = honoPath
      .split('/')
      .map((segment) => {
        if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const custom = /^:[^{]+\{(.+)\}$/.exec(segment);
        return custom ? `(?:${custom[1]})` : '[^/]+';
      })
      .join('/');
    this.entries.push({ method, pattern: new RegExp(`^${pattern}/?$`) });
  }

  /** The methods some route answers for `path` (HEAD wherever GET is), or none when no route matches. */
  allowed(path: string): string[] {
    const methods = new Set(this.entries.filter((e) => e.pattern.test(path)).map((e) => e.method));
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  }
}
