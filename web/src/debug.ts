// A small ring buffer of received socket events and acks, readable as `window.meetDebug` (support and tests).

export interface DebugEntry {
  t: number;
  event: string;
  data: unknown;
}

const MAX = 500;
const entries: DebugEntry[] = [];

export function debugEvent(event: string, data: unknown): void {
  entries.push({ t: Math.round(performance.now()), event, data });
  if (entries.length > MAX) entries.splice(0, entries.length - MAX);
}

export function debugEntries(name?: string): DebugEntry[] {
  return entries.filter((e) => !name || e.event === name);
}
