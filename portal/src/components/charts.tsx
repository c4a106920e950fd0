import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { StatsBucket } from '../api';
import { duration } from '../format';

const GREEN = '#2f9e44';
const RED = '#e03131';
const BLUE = '#3b5bdb';
const VIOLET = '#9c36b5';

/** A uPlot chart that follows its container's width. */
function Plot({
  options,
  data,
  label,
}: {
  options: Omit<uPlot.Options, 'width'>;
  data: uPlot.AlignedData;
  label: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  // Options and data are made anew on each render; the chart is redrawn only when the numbers change.
  const current = useRef({ options, data });
  current.current = { options, data };
  const numbers = JSON.stringify(data);
  useEffect(() => {
    const { options, data } = current.current;
    const element = box.current;
    if (!element) return;
    const plot = new uPlot(
      { ...options, width: Math.max(element.clientWidth, 200) } as uPlot.Options,
      data,
      element,
    );
    const observer = new ResizeObserver(() => {
      plot.setSize({ width: Math.max(element.clientWidth, 200), height: options.height });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [numbers]);
  return <div class="plot" ref={box} role="img" aria-label={label} />;
}

const axisStyle = {
  stroke: '#5c6370',
  grid: { stroke: '#eef0f3', width: 1 },
  ticks: { stroke: '#dfe3e8', width: 1 },
};

const seconds = (series: StatsBucket[]) => series.map((b) => Date.parse(b.start) / 1000);

/** Deliveries finished per bucket: succeeded at the bottom, failed stacked on top. */
export function DeliveriesChart({ series, bucket }: { series: StatsBucket[]; bucket: 'hour' | 'day' }) {
  const succeeded = series.map((b) => b.succeeded);
  const failed = series.map((b) => b.failed);
  const total = series.map((b) => b.succeeded + b.failed);
  const bars = uPlot.paths.bars?.({ size: [0.7, 28], gap: 1 });
  const options: Omit<uPlot.Options, 'width'> = {
    height: 200,
    legend: { show: true },
    cursor: { points: { show: false } },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(4, max)] } },
    axes: [
      { ...axisStyle, space: 60 },
      {
        ...axisStyle,
        size: 40,
        values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')),
      },
    ],
    series: [
      { label: bucket === 'hour' ? 'Hour' : 'Day' },
      {
        label: 'Failed',
        stroke: RED,
        fill: `${RED}cc`,
        width: 0,
        paths: bars,
        points: { show: false },
        value: (_u, _v, _s, i) => (i === null ? '—' : String(failed[i] ?? 0)),
      },
      {
        label: 'Succeeded',
        stroke: GREEN,
        fill: `${GREEN}cc`,
        width: 0,
        paths: bars,
        points: { show: false },
      },
    ],
  };
  const sumSucceeded = succeeded.reduce((a, b) => a + b, 0);
  const sumFailed = failed.reduce((a, b) => a + b, 0);
  return (
    <Plot
      options={options}
      data={[seconds(series), total, succeeded]}
      label={`Deliveries per ${bucket}: ${sumSucceeded} succeeded and ${sumFailed} failed in this window.`}
    />
  );
}

/** The median and 95th percentile of attempt durations per bucket. */
export function DurationChart({ series, bucket }: { series: StatsBucket[]; bucket: 'hour' | 'day' }) {
  const p50 = series.map((b) => b.p50_duration_ms);
  const p95 = series.map((b) => b.p95_duration_ms);
  const options: Omit<uPlot.Options, 'width'> = {
    height: 160,
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(10, max ?? 10)] } },
    axes: [
      { ...axisStyle, space: 60 },
      { ...axisStyle, size: 56, values: (_u, ticks) => ticks.map((t) => duration(t)) },
    ],
    series: [
      { label: bucket === 'hour' ? 'Hour' : 'Day' },
      { label: 'Median', stroke: BLUE, width: 2, spanGaps: false, value: (_u, v) => duration(v) },
      { label: '95th percentile', stroke: VIOLET, width: 2, dash: [6, 4], value: (_u, v) => duration(v) },
    ],
  };
  const known = p95.filter((v): v is number => v !== null);
  return (
    <Plot
      options={options}
      data={[seconds(series), p50, p95] as uPlot.AlignedData}
      label={
        known.length
          ? `Attempt duration per ${bucket}: the 95th percentile was at most ${duration(Math.max(...known))}.`
          : 'Attempt duration: no attempts in this window.'
      }
    />
  );
}
