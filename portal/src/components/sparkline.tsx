import type { StatsBucket } from '../api';
import { percent } from '../format';

/**
 * The success rate of each hour as a small bar (none where nothing was delivered): full and
 * green when every delivery succeeded, shorter and amber or red when some failed. Its accessible
 * name says the rate over the whole window.
 */
export function Sparkline({ series, label }: { series: StatsBucket[]; label: string }) {
  const width = 120;
  const height = 28;
  const succeeded = series.reduce((sum, b) => sum + b.succeeded, 0);
  const failed = series.reduce((sum, b) => sum + b.failed, 0);
  const total = succeeded + failed;
  const step = width / Math.max(series.length, 1);
  const rate = total === 0 ? 'no deliveries' : `${percent(succeeded, total)} succeeded`;
  return (
    <span class="sparkline">
      <svg
        class="spark"
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${label}: ${rate} in the last 24 hours`}
      >
        <line x1="0" y1={height - 0.5} x2={width} y2={height - 0.5} class="spark-base" />
        {series.map((bucket, i) => {
          const done = bucket.succeeded + bucket.failed;
          if (done === 0) return null;
          const share = bucket.succeeded / done;
          const barHeight = Math.max(3, share * (height - 2));
          const tone = share === 1 ? 'ok' : share >= 0.9 ? 'warn' : 'bad';
          return (
            <rect
              key={bucket.start}
              class={`spark-${tone}`}
              x={(i * step + 0.5).toFixed(1)}
              y={(height - 1 - barHeight).toFixed(1)}
              width={Math.max(1.5, step - 1).toFixed(1)}
              height={barHeight.toFixed(1)}
              rx="0.8"
            />
          );
        })}
      </svg>
      <span class="spark-rate" aria-hidden="true">
        {total === 0 ? '—' : percent(succeeded, total)}
      </span>
    </span>
  );
}
