import { ArnFormat, Duration, Names, Stack, Token } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { CATALOG_MAX_WAIT_SECONDS } from '../core/catalog-document';
import { CATALOG_ENV, CatalogServeConfig, DEFAULT_CATALOG_CACHE_MS } from '../core/catalog-request';
import { handlerCode } from './handler-code';
import type { RegistryStateTable } from './registry-state-table';
import { AgentLbValidationError } from './validation-error';

/** Properties of a {@link CapabilityCatalog}. */
export interface CapabilityCatalogProps {
  /** Where the registry keeps the catalog document the function serves. */
  readonly stateTable: RegistryStateTable;

  /**
   * How long a function container serves a document it read before reading it again, 0–60
   * seconds: it bounds both the catalog's staleness and its DynamoDB reads (one eventually
   * consistent GetItem per container and interval, whatever the request rate).
   *
   * @default Duration.seconds(1)
   */
  readonly cacheTtl?: Duration;

  /**
   * Most concurrent executions of the function. A blocking query (`?revision=N&wait=S`) holds
   * one for up to 20 s, so on an internet-facing endpoint a cap keeps a crowd of waiting clients
   * from taking the account's Lambda concurrency (ALB answers 503 past it).
   *
   * @default - no reserved concurrency
   */
  readonly reservedConcurrency?: number;

  /**
   * Retention of the function's log group.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The capability catalog's serving side: a small Lambda function (the `catalog` handler,
 * pre-bundled like the registry's) behind a Lambda target group, which the router's `GET /agents`
 * rule forwards to. The function may read the catalog item of the registry state table and
 * nothing else; ELB may invoke it through this target group only.
 */
export class CapabilityCatalog extends Construct {
  public readonly function: lambda.Function;
  /** The Lambda target group (a target group of the load balancer: it counts against ALB's 100). */
  public readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** ELB's permission to invoke the function, from this target group (by its name) in this account only. */
  public readonly invokePermission: lambda.CfnPermission;

  constructor(scope: Construct, id: string, props: CapabilityCatalogProps) {
    super(scope, id);
    const cacheSeconds = props.cacheTtl?.toSeconds({ integral: false });
    if (cacheSeconds !== undefined && !Token.isUnresolved(cacheSeconds) && !(cacheSeconds >= 0 && cacheSeconds <= 60)) {
      throw new AgentLbValidationError(this, `catalog cacheTtl ${cacheSeconds} seconds is out of range 0–60 seconds`);
    }
    const reserved = props.reservedConcurrency;
    if (reserved !== undefined && !Token.isUnresolved(reserved) && !(Number.isInteger(reserved) && reserved >= 1)) {
      throw new AgentLbValidationError(this, `catalog reservedConcurrency ${reserved} must be a whole number of at least 1`);
    }

    const role = new iam.Role(this, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description: 'agent-lb capability catalog function' });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    logGroup.grantWrite(role);
    const config: CatalogServeConfig = {
      tableName: props.stateTable.tableName,
      cacheMs: cacheSeconds === undefined || Token.isUnresolved(cacheSeconds) ? DEFAULT_CATALOG_CACHE_MS : Math.round(cacheSeconds * 1000),
    };
    this.function = new lambda.Function(this, 'Function', {
      code: handlerCode(this, 'catalog'),
      handler: 'index.handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      // A blocking query waits up to 20 s, then answers.
      timeout: Duration.seconds(CATALOG_MAX_WAIT_SECONDS + 10),
      description: 'agent-lb: serves the capability catalog (GET /agents) from the registry state table',
      role,
      logGroup,
      ...(reserved !== undefined ? { reservedConcurrentExecutions: reserved } : {}),
      environment: {
        [CATALOG_ENV]: Stack.of(this).toJsonString(config),
        POWERTOOLS_SERVICE_NAME: 'agent-lb-catalog',
        POWERTOOLS_LOG_LEVEL: 'WARN',
        NODE_OPTIONS: '--enable-source-maps',
      },
    });
    props.stateTable.grantCatalogRead(role);

    const first = this.lambdaTargetGroup(this);
    this.targetGroup = first.targetGroup;
    this.invokePermission = first.invokePermission;
  }

  /**
   * Another Lambda target group of the function, for another load balancer of the deployment
   * (a target group belongs to one load balancer): `GET /agents` then answers on each.
   */
  public addTargetGroup(id: string): elbv2.ApplicationTargetGroup {
    return this.lambdaTargetGroup(new Construct(this, id)).targetGroup;
  }

  private lambdaTargetGroup(scope: Construct): { targetGroup: elbv2.ApplicationTargetGroup; invokePermission: lambda.CfnPermission } {
    // ELB may invoke the function from this target group only. CDK's LambdaTarget grants any
    // load balancer (no SourceArn: the group's ARN would make a cycle with the group waiting for
    // the permission), so the group gets a name of its own and the permission its ARN pattern.
    const stack = Stack.of(this);
    const targetGroupName = Names.uniqueResourceName(scope, { maxLength: 32, separator: '-' }).replace(/^-+|-+$/g, '');
    const invokePermission = new lambda.CfnPermission(scope, 'InvokeFromTargetGroup', {
      action: 'lambda:InvokeFunction',
      functionName: this.function.functionArn,
      principal: 'elasticloadbalancing.amazonaws.com',
      sourceAccount: stack.account,
      sourceArn: stack.formatArn({ service: 'elasticloadbalancing', resource: 'targetgroup', resourceName: `${targetGroupName}/*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME }),
    });
    const targetGroup = new elbv2.ApplicationTargetGroup(scope, 'TargetGroup', { targetGroupName });
    const fn = this.function;
    targetGroup.addTarget({
      attachToApplicationTargetGroup: (group) => {
        group.node.addDependency(invokePermission);
        return { targetType: elbv2.TargetType.LAMBDA, targetJson: { id: fn.functionArn } };
      },
    });
    return { targetGroup, invokePermission };
  }
}
