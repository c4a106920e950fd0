import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import tls from 'node:tls';
import { Agent } from 'undici';
import type { AddressPolicy } from '../domain/address-policy.js';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Host name -> addresses. The system resolver by default; tests may map names of their own. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = (hostname) =>
  dns.promises.lookup(hostname, { all: true, verbatim: true });

/** How long a host name's addresses are reused (they are checked again on every use). */
const RESOLUTION_REUSE_MS = 10_000;
const MAX_REMEMBERED_HOSTS = 10_000;

/**
 * Shares one lookup among the connections opened to a host at once (a fan-out to many webhooks
 * of one receiver opens hundreds) and reuses its answer briefly. Failed lookups are not kept.
 */
export function sharedResolver(resolve: Resolver, reuseMs = RESOLUTION_REUSE_MS): Resolver {
  const known = new Map<string, { at: number; addresses: Promise<ResolvedAddress[]> }>();
  return (hostname) => {
    const now = Date.now();
    const hit = known.get(hostname);
    if (hit && now - hit.at < reuseMs) return hit.addresses;
    const addresses = resolve(hostname);
    known.delete(hostname);
    known.set(hostname, { at: now, addresses });
    if (known.size > MAX_REMEMBERED_HOSTS) known.delete(known.keys().next().value as string);
    addresses.catch(() => {
      if (known.get(hostname)?.addresses === addresses) known.delete(hostname);
    });
    return addresses;
  };
}

/** A delivery refused because of where it would go. */
export class RefusedAddressError extends Error {
  readonly code = 'E_REFUSED_ADDRESS';
}

/**
 * A DNS lookup for the connector that checks every address the name resolves to and hands the
 * socket only checked ones, so the address dialled is the address checked (no DNS rebinding).
 * IP literals never reach a lookup; the sender checks those itself.
 */
export function checkedLookup(policy: AddressPolicy, resolve: Resolver): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addresses) => {
        for (const { address } of addresses) {
          const refusal = policy.refusal(address);
          if (refusal) {
            const error = new RefusedAddressError(
              `${hostname} resolves to ${address} (${refusal}), which webhooks may not reach`,
            );
            return callback(error, '', 0);
          }
        }
        const wanted = options.family === 4 || options.family === 6 ? options.family : undefined;
        const usable = addresses.filter((a) => wanted === undefined || a.family === wanted);
        const first = usable[0];
        if (!first) {
          const error = Object.assign(new Error(`${hostname} has no usable address`), { code: 'ENOTFOUND' });
          return callback(error, '', 0);
        }
        if (options.all) return (callback as (e: null, a: ResolvedAddress[]) => void)(null, usable);
        return callback(null, first.address, first.family);
      },
      (error: Error) => callback(error as NodeJS.ErrnoException, '', 0),
    );
  };
}

export interface AgentOptions {
  policy: AddressPolicy;
  /** At most this many connections to one origin; requests beyond wait for a free one. */
  connectionsPerOrigin: number;
  resolve?: Resolver;
  /** Extra trusted CAs for TLS (tests); Node's own list and NODE_EXTRA_CA_CERTS apply otherwise. */
  ca?: string[];
}

/**
 * One keep-alive connection pool per origin, for every delivery of this process. Its size is
 * bounded: a fan-out to a thousand webhooks of one host then reuses a hundred connections instead
 * of opening eight hundred at once, whose handshakes took most of the time (2.3 s against 0.9 s).
 * Connections share one TLS context instead of building one each (it showed in profiles too).
 */
export function deliveryAgent(options: AgentOptions): Agent {
  return new Agent({
    connections: options.connectionsPerOrigin,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    connect: {
      lookup: checkedLookup(options.policy, sharedResolver(options.resolve ?? systemResolver)),
      secureContext: tls.createSecureContext(options.ca ? { ca: options.ca } : {}),
    },
  });
}
