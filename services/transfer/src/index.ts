export { TRANSFER_MIGRATIONS, TransferConfig, transferService } from './manifest.js';
