export {
  FollowError,
  type FollowOptions,
  followBulkRun,
  SseParser,
  type StreamFrame,
} from './bulk-runs/bulk-run-follower.js';
export {
  type BulkQaContext,
  bulkQaCancel,
  bulkQaFollow,
  bulkQaPreview,
  bulkQaStart,
  filtersFrom,
  livePageUrl,
} from './commands/bulk-qa.js';
export { DEMO, describeSeed, type SeedResult, seed } from './commands/seed.js';
export { migrateAll, provision, SERVICE_MIGRATIONS } from './commands/setup.js';
export { parseDuration, token } from './commands/token.js';
export {
  type ByteSource,
  type DeclaredUploadFile,
  DeviceUploader,
  type DeviceUploaderOptions,
  UploadHttpError,
} from './uploads/device-uploader.js';
