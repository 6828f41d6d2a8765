import type { Device, Episode } from '@ferry/contracts';
import { v7 as uuidv7 } from 'uuid';

/**
 * Production's episode as its events carry it, for tests that play production: fresh ids, `pending_qa`,
 * created now. Tests override what they look at.
 */
export function episodeRecord(fields: Pick<Episode, 'organization_id' | 'files'> & Partial<Episode>): Episode {
  const at = new Date().toISOString();
  return {
    id: uuidv7(),
    task_id: uuidv7(),
    batch_id: uuidv7(),
    order_id: uuidv7(),
    scene_id: uuidv7(),
    workstation_id: uuidv7(),
    device_id: 'arm-test',
    upload_id: uuidv7(),
    recording: null,
    qa_status: 'pending_qa',
    labels: [],
    created_at: at,
    updated_at: at,
    ...fields,
  };
}

/** Transfer's device as its events carry it, for tests that play transfer: no robot type unless given. */
export function deviceRecord(fields: Pick<Device, 'organization_id' | 'device_id'> & Partial<Device>): Device {
  const at = new Date().toISOString();
  return {
    id: uuidv7(),
    serial: null,
    name: fields.device_id,
    robot_type: null,
    expected_topics: [],
    metadata: {},
    created_at: at,
    updated_at: at,
    ...fields,
  };
}
