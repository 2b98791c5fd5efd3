import { DynamoDBClient, DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';

/** Kept apart from the ELB client factory so agent bundles never pull in the ELB client. */
export function createDynamoClient(config: DynamoDBClientConfig = {}): DynamoDBClient {
  return new DynamoDBClient({ maxAttempts: 5, ...config });
}
