export { TransferConfig, transferService } from './manifest.js';
export { TRANSFER_MIGRATIONS } from './migrations.js';
