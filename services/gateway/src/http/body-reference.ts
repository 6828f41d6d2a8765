import { DomainError, isDomainError } from '@ferry/platform';

/** Where each string of `value` sits, as `body.a.0.b` paths (iterative: bodies are depth-checked, but stay safe). */
function pathsOf(value: unknown, wanted: string, root: string): string[] {
  const found: string[] = [];
  const stack: { value: unknown; path: string }[] = [{ value, path: root }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (v === wanted) found.push(path);
    else if (typeof v === 'object' && v !== null) {
      for (const [key, child] of Object.entries(v)) stack.push({ value: child, path: `${path}.${key}` });
    }
  }
  return found.reverse();
}

/**
 * The rule for references (docs/api.md "Limits"): an id named in the request body that the caller's
 * organization cannot see is **422** `reference_not_found` naming the field, on every route; one named
 * in the path stays **404** `not_found`. Services only say what they could not find (`notFound(what,
 * id)`, passed through any service in between); which part of the request the id came from is known
 * here alone, so the rule is applied here once, to every route's outcome, and no route or service
 * can forget it.
 */
export function asBodyReference(err: unknown, request: { params: unknown; body: unknown }): unknown {
  if (!isDomainError(err) || err.code !== 'not_found') return err;
  const id = err.details?.id;
  if (typeof id !== 'string' || id === '') return err;
  if (pathsOf(request.params, id, 'path').length > 0) return err;
  let paths = pathsOf(request.body, id, 'body');
  if (paths.length === 0) return err;
  const resource = typeof err.details?.resource === 'string' ? err.details.resource : 'resource';
  // The same id in several fields (unlikely, never wrong): name the field of that resource when one is.
  const field = `${resource.replaceAll(' ', '_')}_id`;
  if (paths.some((p) => p.endsWith(`.${field}`))) paths = paths.filter((p) => p.endsWith(`.${field}`));
  return new DomainError(
    'reference_not_found',
    `${resource} ${id} does not exist in this organization`,
    { errors: paths.map((path) => ({ path, message: `no such ${resource} in this organization` })) },
    { cause: err },
  );
}
