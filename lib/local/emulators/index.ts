export { assertPortFree, freePort, freePorts, LOOPBACK } from './free-port';
export { processGroupAlive, spawnManaged } from './process-group';
export type { ManagedProcess, ManagedProcessOptions, ProcessExit } from './process-group';
export { LOCAL_CREDENTIALS, LOCAL_REGION, locateDynamoDbLocalJar, startDynamoDbLocal } from './dynamodb-local';
export type { DynamoDbLocal, DynamoDbLocalOptions } from './dynamodb-local';
export { findExecutable, MOTO_CREDENTIALS, MOTO_INSTALL_HINT, MOTO_LAUNCHER, MotoServerNotFoundError, startMotoServer } from './moto-server';
export type { MotoServer, MotoServerOptions, TargetHealthReport } from './moto-server';
