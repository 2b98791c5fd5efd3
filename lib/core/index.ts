export * from './errors';
export * from './address-policy';
export * from './lease-schema';
export * from './lease-codec';
export * from './lease-routing';
export * from './target-planner';
export * from './reconcile-planner';
export * from './runtime-config';
