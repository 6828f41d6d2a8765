import { DomainError, notFound } from '@ferry/platform';
import { describe, expect, it } from 'vitest';
import { asBodyReference } from './body-reference.js';

const ORDER = '01900000-0000-7000-8000-000000000001';
const WORKSTATION = '01900000-0000-7000-8000-000000000002';

describe('asBodyReference', () => {
  it('turns a not_found about an id the body names into reference_not_found naming the field', () => {
    const err = asBodyReference(notFound('Order', ORDER), {
      params: undefined,
      body: { order_id: ORDER, workstation_id: WORKSTATION },
    });
    expect(err).toBeInstanceOf(DomainError);
    expect(err).toMatchObject({
      code: 'reference_not_found',
      details: { errors: [{ path: 'body.order_id', message: 'no such order in this organization' }] },
    });
  });

  it('names every place the id appears in nested items, in order', () => {
    const err = asBodyReference(notFound('Workstation', WORKSTATION), {
      params: { id: ORDER },
      body: { items: [{ workstation_id: ORDER }, { workstation_id: WORKSTATION }, { workstation_id: WORKSTATION }] },
    });
    expect(err).toMatchObject({
      code: 'reference_not_found',
      details: { errors: [{ path: 'body.items.1.workstation_id' }, { path: 'body.items.2.workstation_id' }] },
    });
  });

  it('prefers the field named after the resource when the same id sits in several fields', () => {
    const err = asBodyReference(notFound('Task', ORDER), { params: undefined, body: { note: ORDER, task_id: ORDER } });
    expect(err).toMatchObject({ details: { errors: [{ path: 'body.task_id' }] } });
  });

  it('leaves a not_found about a path id a 404, even when the body repeats the id', () => {
    const original = notFound('Order', ORDER);
    expect(asBodyReference(original, { params: { id: ORDER }, body: { order_id: ORDER } })).toBe(original);
  });

  it('leaves other errors, and a not_found about something the request does not name, unchanged', () => {
    const elsewhere = notFound('Device', 'arm-1');
    const conflict = new DomainError('conflict', 'changed', { id: ORDER });
    const body = { order_id: ORDER };
    expect(asBodyReference(elsewhere, { params: undefined, body })).toBe(elsewhere);
    expect(asBodyReference(conflict, { params: undefined, body })).toBe(conflict);
    const bug = new Error('boom');
    expect(asBodyReference(bug, { params: undefined, body })).toBe(bug);
  });
});
