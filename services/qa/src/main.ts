import { runService } from '@ferry/platform';
import { qaService } from './manifest.js';

await runService(qaService);
