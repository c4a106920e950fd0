/** PlanDocket plans, cheapest first. */
export const PLANS = ['standard', 'professional', 'business', 'enterprise'] as const;
export type Plan = (typeof PLANS)[number];

/** The Webhooks API is "Business+": the Business plan or higher. */
export const WEBHOOKS_MINIMUM_PLAN: Plan = 'business';

export function planIncludes(plan: Plan, minimum: Plan): boolean {
  return PLANS.indexOf(plan) >= PLANS.indexOf(minimum);
}

/** The API key scopes named in PlanDocket's documentation. */
export const SCOPES = [
  'events',
  'contacts',
  'participants',
  'applications',
  'categories',
  'invoices',
  'payments',
  'tasks',
  'documents',
  'submissions',
  'booths',
  'checkins',
  'services',
  'service_orders',
  'newsletter',
  'custom_fields',
  'plans',
  'schedules',
  'webhooks',
  'reports',
  'audit',
  'calendar-feed',
] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * The feature flags a tenant may have: PlanDocket switches its modules on per tenant, and they
 * are named as the scopes are. Only `webhooks` changes what this service does; any other name is
 * refused, so that a misspelt `webhook` is not accepted and then answered with 403s.
 */
export const FEATURE_FLAGS = SCOPES;
