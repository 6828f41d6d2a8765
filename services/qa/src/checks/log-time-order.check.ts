import type { OrderViolation } from './mcap-scan.types.js';
import { failed, firstFew, passed, type QaCheck, skipped } from './qa-check.js';

const describe = (v: OrderViolation) =>
  `${v.topic} (channel ${v.channelId}) message sequence ${v.sequence} at log time ${v.logTime} comes after log time ${v.previousLogTime} (${v.place})`;

/**
 * Log time never goes backwards on a channel; in an unchunked file (messages in the data section, in write
 * order) it never goes backwards across channels either.
 */
export const logTimeOrderCheck: QaCheck = {
  name: 'log_time_order',
  version: 1,
  run({ scan }) {
    if (!scan) return skipped(this, 'no object to read');
    const { order } = scan;
    const metrics = {
      out_of_order_messages: order.outOfOrder,
      channels_out_of_order: order.firstByChannel.map((v) => ({
        channel_id: v.channelId,
        topic: v.topic,
        sequence: v.sequence,
        log_time: v.logTime.toString(),
        previous_log_time: v.previousLogTime.toString(),
        place: v.place,
      })),
      across_channels: order.acrossChannels
        ? { topic: order.acrossChannels.topic, place: order.acrossChannels.place }
        : null,
    };
    const problems = order.firstByChannel.map(describe);
    if (order.acrossChannels && problems.length === 0) {
      problems.push(`across channels: ${describe(order.acrossChannels)}`);
    }
    if (problems.length > 0) {
      const n = order.outOfOrder;
      const head =
        n > 0 ? `log time goes backwards for ${n} ${n === 1 ? 'message' : 'messages'}` : 'log time goes backwards';
      return failed(this, `${head}: ${firstFew(problems, 3)}`, metrics);
    }
    const withMessages = scan.channels.filter((c) => c.count > 0).length;
    return passed(this, `log time never goes backwards on ${withMessages} channels`, metrics);
  },
};
