export { QA_MIGRATIONS, QaConfig, qaService } from './manifest.js';
