import { Module } from '@nestjs/common';
import { DeviceRepository } from './devices/device.repository.js';
import { DeviceRpc } from './devices/device.rpc.js';
import { DeviceService } from './devices/device.service.js';
import { UploadHandlers } from './uploads/upload.handlers.js';
import { UploadHousekeeper } from './uploads/upload.housekeeper.js';
import { UploadRepository } from './uploads/upload.repository.js';
import { UploadRpc } from './uploads/upload.rpc.js';
import { UploadService } from './uploads/upload.service.js';
import { UploadVerifier } from './uploads/upload.verifier.js';

export const TRANSFER_PROVIDERS = [
  DeviceRepository,
  DeviceService,
  UploadRepository,
  UploadService,
  UploadVerifier,
  UploadHousekeeper,
];

@Module({
  providers: TRANSFER_PROVIDERS,
  controllers: [DeviceRpc, UploadRpc, UploadHandlers],
})
export class TransferModule {}
