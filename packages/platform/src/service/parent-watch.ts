/**
 * Calls `onGone` once when the process that started this one (with an IPC channel, as `npm start`
 * does) goes away — even by SIGKILL, which closes the channel — so a service never outlives its
 * launcher holding ports. Without an IPC channel (Docker, systemd, tests) it does nothing. The
 * channel is unref'd: it never keeps the process alive by itself.
 */
export function onParentExit(onGone: () => void): void {
  if (!process.send || !process.channel) return;
  process.channel.unref();
  process.once('disconnect', onGone);
}
