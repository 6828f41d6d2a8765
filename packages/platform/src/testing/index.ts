// Test helpers against the real Postgres and NATS. Each test file takes its own namespace
// (schemas `<ns>_<service>`, streams `<ns>_<STREAM>`, subjects `<ns>.…`), so files run in parallel.
export { fixturePath, type RunningChild, startChild } from './child-process.js';
export {
  type ConsumerDrainedOptions,
  type EventsSettledOptions,
  waitForConsumerDrained,
  waitForEventsSettled,
} from './events-settled.js';
export { captureLogger, silentLogger } from './loggers.js';
export { freePort } from './ports.js';
export { probeConsumer, probeEvent } from './probe.js';
export { createBucket, type S3TestConnection, startS3rver } from './s3rver.js';
export { streamMessages } from './stream-messages.js';
export {
  dropNamespaceSchemas,
  TestInfra,
  type TestInfraOptions,
  testDatabaseUrl,
  testNatsUrl,
  uniqueNamespace,
} from './test-infra.js';
export { waitFor } from './wait-for.js';
