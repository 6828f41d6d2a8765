export type { ProductionDB } from './database.js';
export { ProductionConfig, productionService } from './manifest.js';
export { PRODUCTION_MIGRATIONS } from './migrations.js';
