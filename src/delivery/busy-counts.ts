/** Deliveries in flight in one worker, counted by webhook or by tenant, against a cap. */
export class BusyCounts {
  /** In flight by id; ids with none are left out. */
  readonly counts = new Map<number, number>();

  constructor(readonly cap: number) {}

  full(id: number): boolean {
    return (this.counts.get(id) ?? 0) >= this.cap;
  }

  /** Whether some id is at its cap: then a claim may have left its due work behind. */
  anyFull(): boolean {
    for (const n of this.counts.values()) if (n >= this.cap) return true;
    return false;
  }

  take(id: number): void {
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  give(id: number): void {
    const left = (this.counts.get(id) ?? 1) - 1;
    if (left > 0) this.counts.set(id, left);
    else this.counts.delete(id);
  }
}
