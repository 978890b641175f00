import type { ServiceBusAdministrationClient, ServiceBusClient, ServiceBusReceiver } from '@azure/service-bus';
import { peekFromStart } from './peek';

/**
 * A replica region's subscription on topic `replication`: created with its rule (`region = '<name>'`)
 * as the only rule, so the topic's fan-out delivers that region's jobs and nothing else. The same
 * calls run against Azure and the embedded emulator (ATOM administration API).
 */

/** Properties of every region subscription (as config/servicebus-emulator.json and infra/main.bicep set them). */
const SUBSCRIPTION_PROPERTIES = {
  lockDuration: 'PT1M',
  maxDeliveryCount: 10,
  deadLetteringOnMessageExpiration: true,
  defaultMessageTimeToLive: 'P14D',
};

export const REGION_RULE = 'region';

export function regionFilter(region: string): string {
  return `region = '${region}'`;
}

/** Creates the subscription, or repairs its rules if it exists. Returns what it did. */
export async function ensureRegionSubscription(admin: ServiceBusAdministrationClient, topic: string, region: string): Promise<'created' | 'existed' | 'repaired'> {
  const filter = { sqlExpression: regionFilter(region) };
  if (!(await admin.subscriptionExists(topic, region))) {
    try {
      await admin.createSubscription(topic, region, { ...SUBSCRIPTION_PROPERTIES, defaultRuleOptions: { name: REGION_RULE, filter } });
      return 'created';
    } catch (e) {
      // Another caller created it in between: fall through and check its rules.
      if (!isAdminError(e, 'MessageEntityAlreadyExistsError', 409)) throw e;
    }
  }
  let repaired = false;
  for await (const rule of admin.listRules(topic, region)) {
    const ours = rule.name === REGION_RULE && 'sqlExpression' in rule.filter && rule.filter.sqlExpression === filter.sqlExpression;
    if (!ours) {
      // `$Default` (TrueFilter) would deliver every region's jobs here.
      await admin.deleteRule(topic, region, rule.name);
      repaired = true;
    }
  }
  if (!(await admin.ruleExists(topic, region, REGION_RULE))) {
    await admin.createRule(topic, region, REGION_RULE, filter);
    repaired = true;
  }
  return repaired ? 'repaired' : 'existed';
}

/**
 * What is wrong with a region's subscription, or undefined when it exists with its rule as the only
 * rule (what `ensureRegionSubscription` makes). Read-only: `georeg doctor` reports, it repairs nothing.
 */
export async function regionSubscriptionProblem(admin: ServiceBusAdministrationClient, topic: string, region: string): Promise<string | undefined> {
  if (!(await admin.subscriptionExists(topic, region))) return `subscription "${region}" is missing on topic "${topic}"`;
  const expected = regionFilter(region);
  const problems: string[] = [];
  let ours = false;
  for await (const rule of admin.listRules(topic, region)) {
    const sql = 'sqlExpression' in rule.filter ? rule.filter.sqlExpression : undefined;
    if (sql?.trim() === expected) ours = true;
    // `$Default` (TrueFilter) or any other rule would deliver jobs of other regions here.
    else problems.push(`rule "${rule.name}" (${sql ?? 'correlation filter'}) would deliver other regions' jobs`);
  }
  if (!ours) problems.unshift(`no rule ${expected}`);
  return problems.length ? `subscription "${region}" on topic "${topic}": ${problems.join('; ')}` : undefined;
}

/** False when there was nothing to delete. */
export async function deleteRegionSubscription(admin: ServiceBusAdministrationClient, topic: string, region: string): Promise<boolean> {
  try {
    await admin.deleteSubscription(topic, region);
    return true;
  } catch (e) {
    if (isAdminError(e, 'MessageEntityNotFoundError', 404)) return false;
    throw e;
  }
}

export interface RegionQueue {
  /** Jobs waiting or in progress. */
  active: number;
  deadLettered: number;
  /** Enqueue time of the oldest job still there: how far behind the region is. */
  oldestEnqueuedAt?: Date;
}

/** What a dashboard shows for the region's subscription; undefined when it does not exist. */
export async function regionQueue(admin: ServiceBusAdministrationClient, client: ServiceBusClient, topic: string, region: string): Promise<RegionQueue | undefined> {
  let props;
  try {
    props = await admin.getSubscriptionRuntimeProperties(topic, region);
  } catch (e) {
    if (isAdminError(e, 'MessageEntityNotFoundError', 404)) return undefined;
    throw e;
  }
  let oldestEnqueuedAt: Date | undefined;
  if (props.activeMessageCount > 0) {
    // Peek sees locked messages too: the oldest job, whether waiting or being copied.
    const receiver: ServiceBusReceiver = client.createReceiver(topic, region, { receiveMode: 'peekLock' });
    try {
      const [oldest] = await peekFromStart(receiver, 1);
      oldestEnqueuedAt = oldest?.enqueuedTimeUtc;
    } finally {
      await receiver.close();
    }
  }
  return { active: props.activeMessageCount, deadLettered: props.deadLetterMessageCount, oldestEnqueuedAt };
}

/** The administration client raises RestErrors (not ServiceBusErrors): match the code it sets, or the HTTP status. */
function isAdminError(e: unknown, code: string, status: number): boolean {
  const err = e as { code?: string; statusCode?: number };
  return err?.code === code || err?.statusCode === status;
}
