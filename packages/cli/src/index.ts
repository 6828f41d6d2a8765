export {
  FollowError,
  type FollowOptions,
  followBulkRun,
  SseParser,
  type StreamFrame,
} from './bulk-runs/bulk-run-follower.js';
export { CliError, describeFailure } from './cli-error.js';
export {
  type BulkQaContext,
  bulkQaCancel,
  bulkQaFollow,
  bulkQaPreview,
  bulkQaStart,
  filtersFrom,
  livePageUrl,
} from './commands/bulk-qa.js';
export { addDevice, listDevices, pairDevice, revokeDeviceTokens } from './commands/device.js';
export { DEMO, describeSeed, type SeedResult, seed } from './commands/seed.js';
export { migrateAll, provision, SERVICE_MIGRATIONS } from './commands/setup.js';
export { parseDuration, token } from './commands/token.js';
export { DEMO_DEVICE_FILE, type DemoDevice, readDemoDevice, writeDemoDevice } from './demo/demo-device-file.js';
export { demoRecording } from './demo/demo-recording.js';
export { type DemoUploadOptions, type DemoUploadResult, demoUpload } from './demo/demo-upload.js';
export { ProgressBar, type ProgressBarOptions } from './demo/progress-bar.js';
export {
  type ByteSource,
  type DeclaredUploadFile,
  DeviceUploader,
  type DeviceUploaderOptions,
  UploadHttpError,
} from './uploads/device-uploader.js';
