import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { StatsBucket } from '../api';
import { duration } from '../format';

const GREEN = '#2f9e44';
const RED = '#e03131';
const GREY = '#adb5bd';
const BLUE = '#3b5bdb';
const VIOLET = '#9c36b5';

/** The axes' labels: uPlot's own font, named here so that the axes can be made to fit them. */
const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

let measuring: CanvasRenderingContext2D | null | undefined;

/** How wide a label is drawn, in CSS pixels. */
function textWidth(text: string): number {
  measuring ??= document.createElement('canvas').getContext('2d');
  if (!measuring) return text.length * 8;
  measuring.font = AXIS_FONT;
  return measuring.measureText(text).width;
}

const TICK = 6;
const GAP = 6;

/**
 * The width of a vertical axis: its tick, the gap, and its widest label, plus a few pixels. A
 * fixed width clips the labels that are wider than it at their first letters ("l00 ms"). It is
 * never narrower than half a date ("11/30/26"), which the time axis centres on its first tick.
 */
const fitLabels: uPlot.Axis.Size = (_u, values) =>
  Math.ceil(
    Math.max(TICK + GAP + Math.max(0, ...(values ?? []).map(textWidth)), textWidth('88/88/88') / 2) + 4,
  );

const axisStyle = {
  font: AXIS_FONT,
  stroke: '#5c6370',
  grid: { stroke: '#eef0f3', width: 1 },
  ticks: { stroke: '#dfe3e8', width: 1, size: TICK },
  gap: GAP,
};

/**
 * A uPlot chart that follows its container's width. It is made once per `shape` (what the
 * options depend on) and given new numbers in place, so that a refresh does not rebuild it.
 */
function Plot({
  options,
  data,
  shape,
  label,
}: {
  options: Omit<uPlot.Options, 'width'>;
  data: uPlot.AlignedData;
  shape: string;
  label: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  // Options and data are made anew on each render; the chart changes only when they say something new.
  const current = useRef({ options, data });
  current.current = { options, data };
  const numbers = JSON.stringify(data);
  useEffect(() => {
    const { options, data } = current.current;
    const element = box.current;
    if (!element) return;
    const made = new uPlot(
      { ...options, width: Math.max(element.clientWidth, 200) } as uPlot.Options,
      data,
      element,
    );
    plot.current = made;
    const observer = new ResizeObserver(() => {
      made.setSize({ width: Math.max(element.clientWidth, 200), height: options.height });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      made.destroy();
      plot.current = null;
    };
  }, [shape]);
  const shown = useRef(numbers);
  useEffect(() => {
    if (shown.current === numbers) return;
    shown.current = numbers;
    plot.current?.setData(current.current.data);
  }, [numbers]);
  return <div class="plot" ref={box} role="img" aria-label={label} />;
}

const seconds = (series: StatsBucket[]) => series.map((b) => Date.parse(b.start) / 1000);

/**
 * Deliveries per bucket of creation, as they are now: succeeded at the bottom, failed stacked on
 * top, and those still pending above them. Each delivery is counted once, as the cards count it.
 */
export function DeliveriesChart({ series, bucket }: { series: StatsBucket[]; bucket: 'hour' | 'day' }) {
  const succeeded = series.map((b) => b.succeeded);
  const settled = series.map((b) => b.succeeded + b.failed);
  const all = series.map((b) => b.succeeded + b.failed + b.pending);
  const bars = uPlot.paths.bars?.({ size: [0.7, 28], gap: 1 });
  // The bars are running totals drawn one over the other; the legend says each part, read from
  // the chart's data so that it follows new numbers given in place.
  const part = (u: uPlot, s: number, i: number | null) => {
    if (i === null) return '—';
    const at = (k: number) => Number(u.data[k]?.[i] ?? 0);
    return String(at(s) - (s < 3 ? at(s + 1) : 0));
  };
  /** The bars of data series `s`: the part of the running total it adds, in its colour. */
  const bar = (label: string, s: number, colour: string): uPlot.Series => ({
    label,
    value: (u, _v, _s, i) => part(u, s, i),
    stroke: colour,
    fill: `${colour}cc`,
    width: 0,
    paths: bars,
    points: { show: false },
  });
  const options: Omit<uPlot.Options, 'width'> = {
    height: 200,
    legend: { show: true },
    cursor: { points: { show: false } },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(4, max)] } },
    axes: [
      { ...axisStyle, space: 60 },
      {
        ...axisStyle,
        size: fitLabels,
        values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? t.toLocaleString('en') : '')),
      },
    ],
    series: [
      { label: bucket === 'hour' ? 'Hour' : 'Day' },
      bar('Pending', 1, GREY),
      bar('Failed', 2, RED),
      bar('Succeeded', 3, GREEN),
    ],
  };
  const sum = (key: 'succeeded' | 'failed' | 'pending') => series.reduce((a, b) => a + b[key], 0);
  return (
    <Plot
      options={options}
      shape={bucket}
      data={[seconds(series), all, settled, succeeded]}
      label={`Deliveries per ${bucket} of creation: ${sum('succeeded')} succeeded, ${sum('failed')} failed and ${sum('pending')} pending in this window.`}
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
      { ...axisStyle, size: fitLabels, values: (_u, ticks) => ticks.map((t) => duration(t)) },
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
      shape={bucket}
      data={[seconds(series), p50, p95] as uPlot.AlignedData}
      label={
        known.length
          ? `Attempt duration per ${bucket}: the 95th percentile was at most ${duration(Math.max(...known))}.`
          : 'Attempt duration: no attempts in this window.'
      }
    />
  );
}
