export * from './bulk-run-stream.js';
export * from './bulk-runs.js';
export * from './profiles.js';
