export { QaConfig, qaService } from './manifest.js';
export { QA_MIGRATIONS } from './migrations.js';
