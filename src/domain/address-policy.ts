import ipaddr from 'ipaddr.js';

/**
 * Which addresses a webhook may be delivered to. Only public unicast addresses are allowed,
 * unless an operator allow-lists a range (for local development and tests).
 */
export class AddressPolicy {
  private readonly allowed: [ipaddr.IPv4 | ipaddr.IPv6, number][];

  constructor(allowedCidrs: readonly string[] = []) {
    this.allowed = allowedCidrs.map((cidr) => ipaddr.parseCIDR(cidr));
  }

  /** Why this IP address may not be dialled, or null when it may. Mapped IPv6 is unwrapped first. */
  refusal(ip: string): string | null {
    if (!ipaddr.isValid(ip)) return 'not an IP address';
    const address = ipaddr.process(ip);
    if (this.allowed.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits))) {
      return null;
    }
    const range = address.range();
    return range === 'unicast' ? null : `${range} address`;
  }

  /**
   * Why a URL's host is refused before any DNS lookup: `localhost` names and IP literals
   * outside the public unicast ranges. Host names are checked again after resolution.
   */
  hostRefusal(hostname: string): string | null {
    // `localhost.` is `localhost`: a trailing dot only marks a name as fully qualified.
    const host = hostname
      .replace(/^\[|\]$/g, '')
      .replace(/\.$/, '')
      .toLowerCase();
    if (host === 'localhost' || host.endsWith('.localhost')) {
      return this.refusal('127.0.0.1') && 'loopback name';
    }
    return ipaddr.isValid(host) ? this.refusal(host) : null;
  }
}

/** Checks an operator's CIDR list; returns the first entry that is not a CIDR. */
export function invalidCidr(cidrs: readonly string[]): string | undefined {
  return cidrs.find((cidr) => {
    try {
      ipaddr.parseCIDR(cidr);
      return false;
    } catch {
      return true;
    }
  });
}
