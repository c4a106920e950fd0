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

  /**
   * Drops the times up to `handled` (work due then has been looked for) and says how many
   * milliseconds from `now` until the next one, at most `max`.
   */
  untilNext(handled: number, now: number, max: number): number {
    let passed = 0;
    while (passed < this.times.length && (this.times[passed] as number) <= handled) passed++;
    this.times.splice(0, passed);
    const next = this.times[0];
    return next === undefined ? max : Math.max(0, Math.min(max, next - now));
  }
}
