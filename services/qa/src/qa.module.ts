import { Module } from '@nestjs/common';

/** The qa service's features are added here as they are built. */
@Module({})
export class QaModule {}
