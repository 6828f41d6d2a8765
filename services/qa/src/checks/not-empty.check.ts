import { failed, passed, type QaCheck, skipped } from './qa-check.js';

/** A valid-looking MCAP with no channels or no messages is an empty recording (read from the MCAP itself). */
export const notEmptyCheck: QaCheck = {
  name: 'not_empty',
  version: 1,
  run({ scan }) {
    if (!scan) return skipped(this, 'no object to read');
    const silent = scan.channels.filter((c) => c.count === 0).map((c) => c.topic);
    const metrics = {
      channels: scan.channels.length,
      messages: scan.messageCount,
      topics: scan.topics.length,
      channels_without_messages: silent,
    };
    if (scan.channels.length === 0) return failed(this, 'recording has no channels', metrics);
    if (scan.messageCount === 0) {
      return failed(this, `recording has ${scan.channels.length} channels but no messages`, metrics);
    }
    return passed(this, `recording has ${scan.messageCount} messages on ${scan.channels.length} channels`, metrics);
  },
};
