import type { Webhook } from '../api';
import { dateTime, timeAgo } from '../format';

/** A time as a date and how long ago (or how soon) it is. */
function When({ iso }: { iso: string }) {
  return (
    <time dateTime={iso}>
      {dateTime(iso)} ({timeAgo(iso)})
    </time>
  );
}

/**
 * Why a webhook is not delivering, since when, and what happens next: while it is failing (its
 * circuit breaker holds its deliveries) or once the service switched it off. Nothing while it is
 * healthy. Said in text, with a heading, so that it reads the same without colours.
 */
export function HealthBanner({ webhook }: { webhook: Webhook }) {
  if (webhook.health === 'disabled') {
    return (
      <section class="notice notice-error health-banner" aria-labelledby="health-title">
        <h2 id="health-title">Switched off by the service</h2>
        <p>
          {webhook.disabled_reason ?? 'Its endpoint kept failing.'}
          {webhook.disabled_at && (
            <>
              {' '}
              Switched off on <When iso={webhook.disabled_at} />.
            </>
          )}
        </p>
        <p>
          Events published while it is off are not queued for it. Fix your endpoint, then activate the
          webhook: deliveries resume. To send the events it missed meanwhile, recover deliveries below with
          “Also send the events this webhook missed”.
        </p>
      </section>
    );
  }
  if (webhook.health !== 'failing') return null;
  const probe = webhook.next_probe_at;
  return (
    <section class="notice notice-warn health-banner" aria-labelledby="health-title">
      <h2 id="health-title">This webhook is failing</h2>
      <p>
        Failing since {webhook.failing_since ? <When iso={webhook.failing_since} /> : 'recently'}: its
        endpoint did not answer successfully.
      </p>
      {webhook.is_active ? (
        <p>
          New deliveries are held; one is sent as a probe{' '}
          {probe && Date.parse(probe) > Date.now() ? (
            <>
              at <When iso={probe} />
            </>
          ) : (
            'shortly'
          )}
          . When one succeeds, the held deliveries go on, and those that failed during the outage (by default
          up to 3 days back) are sent again. A test event checks the endpoint at once.
        </p>
      ) : (
        <p>It is paused, so no probe is sent: activate it to resume.</p>
      )}
    </section>
  );
}
