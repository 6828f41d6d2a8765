import { Module } from '@nestjs/common';

/** The transfer service's features are added here as they are built. */
@Module({})
export class TransferModule {}
