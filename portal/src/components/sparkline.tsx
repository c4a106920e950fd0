import type { StatsBucket } from '../api';
import { percent } from '../format';

/**
 * The success rate of each hour as a small line (gaps where nothing was delivered), with the
 * rate over the whole window as its accessible name.
 */
export function Sparkline({ series, label }: { series: StatsBucket[]; label: string }) {
  const width = 120;
  const height = 28;
  const succeeded = series.reduce((sum, b) => sum + b.succeeded, 0);
  const failed = series.reduce((sum, b) => sum + b.failed, 0);
  const total = succeeded + failed;
  const step = series.length > 1 ? width / (series.length - 1) : width;
  const segments: string[][] = [];
  let current: string[] = [];
  series.forEach((bucket, i) => {
    const done = bucket.succeeded + bucket.failed;
    if (done === 0) {
      if (current.length) segments.push(current);
      current = [];
      return;
    }
    const y = 2 + (1 - bucket.succeeded / done) * (height - 4);
    current.push(`${(i * step).toFixed(1)},${y.toFixed(1)}`);
  });
  if (current.length) segments.push(current);
  const rate = total === 0 ? 'no deliveries' : `${percent(succeeded, total)} succeeded`;
  const tone = total === 0 ? 'none' : failed === 0 ? 'ok' : succeeded / total >= 0.9 ? 'warn' : 'bad';
  return (
    <span class="sparkline">
      <svg
        class={`spark spark-${tone}`}
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${label}: ${rate} in the last 24 hours`}
      >
        <line x1="0" y1="2" x2={width} y2="2" class="spark-top" />
        <line x1="0" y1={height - 2} x2={width} y2={height - 2} class="spark-base" />
        {segments.map((points) =>
          points.length === 1 ? (
            <circle key={points[0]} cx={points[0]?.split(',')[0]} cy={points[0]?.split(',')[1]} r="1.8" />
          ) : (
            <polyline key={points.join(' ')} points={points.join(' ')} />
          ),
        )}
      </svg>
      <span class="spark-rate" aria-hidden="true">
        {total === 0 ? '—' : percent(succeeded, total)}
      </span>
    </span>
  );
}
