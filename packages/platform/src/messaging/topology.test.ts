import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeConsumer, TestInfra } from '../testing/index.js';
import { ADVISORIES_STREAM, provisionTopology, TopologyError, verifyTopology } from './topology.js';

describe('provisionTopology', () => {
  let infra: TestInfra;
  beforeAll(async () => {
    infra = await TestInfra.create({ provision: false });
  });
  afterAll(() => infra.cleanup());

  it('names what is missing when a service boots against an unprovisioned server', async () => {
    const err = await verifyTopology(infra.jsm, infra.ns, {
      streams: ['PRODUCTION'],
      consumers: [probeConsumer()],
    }).catch((e) => e);
    expect(err).toBeInstanceOf(TopologyError);
    expect(err.message).toContain(`stream ${infra.ns.stream('PRODUCTION')}`);
    expect(err.message).toContain(`consumer ${infra.ns.stream('PRODUCTION')}/production__probe`);
    expect(err.message).toMatch(/ferry -- setup/);
  });

  it('creates the design’s streams once and is a no-op when run again', async () => {
    const first = await provisionTopology(infra.jsm, infra.ns, { consumers: [probeConsumer()] });
    expect(first.created).toContain(`stream ${infra.ns.stream('PRODUCTION')}`);
    expect(first.created).toContain(`stream ${infra.ns.stream(ADVISORIES_STREAM)}`);
    const second = await provisionTopology(infra.jsm, infra.ns, { consumers: [probeConsumer()] });
    expect(second.created).toEqual([]);
    expect(second.updated).toEqual([]);
    await expect(
      verifyTopology(infra.jsm, infra.ns, { streams: ['PRODUCTION', 'DLQ'], consumers: [probeConsumer()] }),
    ).resolves.toBeUndefined();

    const info = await infra.jsm.streams.info(infra.ns.stream('PRODUCTION'));
    expect(info.config.subjects).toEqual([infra.ns.subject('production.evt.>')]);
    expect(info.config.max_age).toBe(7 * 24 * 3600 * 1e9);
    expect(info.config.duplicate_window).toBe(600 * 1e9);
    expect(info.config.retention).toBe('limits');
    expect(info.config.storage).toBe('file');
  });

  it('brings a drifted consumer back to its contract', async () => {
    const def = probeConsumer();
    await infra.jsm.consumers.update(infra.ns.stream('PRODUCTION'), def.durable, { max_deliver: 99 });
    const report = await provisionTopology(infra.jsm, infra.ns, { consumers: [def] });
    expect(report.updated).toEqual([`consumer ${infra.ns.stream('PRODUCTION')}/${def.durable}`]);
    const info = await infra.jsm.consumers.info(infra.ns.stream('PRODUCTION'), def.durable);
    expect(info.config.max_deliver).toBe(def.maxDeliver);
  });
});
