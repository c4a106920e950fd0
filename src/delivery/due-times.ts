/** Times at which something falls due, earliest first. */
export class DueTimes {
  private readonly times: number[] = [];

  add(time: number): void {
    let low = 0;
    let high = this.times.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.times[mid] as number) < time) low = mid + 1;
      else high = mid;
    }
    this.times.splice(low, 0, time);
  }

  /** Milliseconds until the next time after `now` (at most `max`); times that passed are dropped. */
  untilNext(now: number, max: number): number {
    let passed = 0;
    while (passed < this.times.length && (this.times[passed] as number) <= now) passed++;
    this.times.splice(0, passed);
    const next = this.times[0];
    return next === undefined ? max : Math.min(max, next - now);
  }
}
