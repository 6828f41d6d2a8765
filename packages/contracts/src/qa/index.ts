export * from './profiles.js';
export * from './bulk-runs.js';
