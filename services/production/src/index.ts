export type { ProductionDB } from './database.js';
export { PRODUCTION_MIGRATIONS, ProductionConfig, productionService } from './manifest.js';
