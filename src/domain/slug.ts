/** A tenant's slug is its subdomain: one DNS label, lower case. */
export const SLUG_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
const SLUG = new RegExp(SLUG_PATTERN);

export const isSlug = (value: string): boolean => SLUG.test(value);
