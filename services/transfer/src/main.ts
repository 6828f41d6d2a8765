import { runService } from '@ferry/platform';
import { transferService } from './manifest.js';

await runService(transferService);
