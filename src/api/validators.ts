import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';

/** Body fields are checked strictly; query strings and path parameters are coerced from text. */
export function validators() {
  const body = new Ajv({ allErrors: true, coerceTypes: false, useDefaults: false, strict: false });
  const text = new Ajv({ allErrors: true, coerceTypes: 'array', useDefaults: true, strict: false });
  addFormats.default(body);
  addFormats.default(text);
  return { body, text };
}
