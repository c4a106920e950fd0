/** Readable messages per field, as a 422 answer lists them. */
export type FieldErrors = Record<string, string[]>;

/** Field names come from clients (`toString` included): only own properties count. */
const messagesOf = (errors: FieldErrors, field: string): string[] =>
  Object.hasOwn(errors, field) ? (errors[field] as string[]) : [];

/** Adds a message to a field, once. */
export function addError(errors: FieldErrors, field: string, message: string): void {
  const list = messagesOf(errors, field);
  if (!list.includes(message)) list.push(message);
  errors[field] = list;
}

/** Adds `more` to `errors`, field by field. */
export function mergeErrors(errors: FieldErrors, more: FieldErrors): FieldErrors {
  for (const [field, messages] of Object.entries(more)) {
    for (const message of messages) addError(errors, field, message);
  }
  return errors;
}
