/**
 * E-mail addresses: a tenant's `notification_email` and the service's `MAIL_FROM`.
 *
 * The check is the one browsers apply to `<input type="email">` (the HTML standard's "valid
 * e-mail address"): a plain `local@domain`, no display name, no comments, no quoted local part.
 * It keeps out what would change the meaning of a mail header (spaces, commas, angle brackets,
 * line breaks), so an address that passes is sent as one recipient and nothing more.
 */

/** RFC 5321 caps a path at 256 octets, the two angle brackets included. */
export const MAIL_ADDRESS_MAX_LENGTH = 254;

const LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?';
const ADDRESS = new RegExp(`^[a-zA-Z0-9.!#$%&'*+/=?^_\`{|}~-]+@${LABEL}(?:\\.${LABEL})*$`);

export const isMailAddress = (value: string): boolean =>
  value.length <= MAIL_ADDRESS_MAX_LENGTH && ADDRESS.test(value);

/** A sender: the address, and the name mail programs show for it (may be empty). */
export interface Mailbox {
  name: string;
  address: string;
}

/**
 * `Name <address>` or a bare `address` -> its parts; undefined when the address is not one, or
 * the name holds characters that would need quoting in a header (the mail library quotes and
 * encodes the name it is given; the operator need not).
 */
export function parseMailbox(text: string): Mailbox | undefined {
  const trimmed = text.trim();
  const named = /^([^<>"\\,;:@\p{Cc}]*)<([^<>]*)>$/u.exec(trimmed);
  const name = named ? (named[1] as string).trim() : '';
  const address = named ? (named[2] as string).trim() : trimmed;
  return isMailAddress(address) ? { name, address } : undefined;
}
