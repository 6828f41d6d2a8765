import { runService } from '@ferry/platform';
import { productionService } from './manifest.js';

await runService(productionService);
