export * from './auth.js';
export * from './errors.js';
export * from './messaging.js';
export * from './pagination.js';
export * from './primitives.js';
export * from './problem.js';
export * from './production/index.js';
export * from './registry.js';
