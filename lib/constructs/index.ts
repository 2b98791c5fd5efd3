export * from './lease-table';
export * from './capability-router';
export * from './registry-sync';
export * from './agent-lb-stack';
export * from './nag-suppressions';
export * from './app-context';
