/** What the worker's parts log with (a pino logger). */
export interface WorkerLog {
  info(obj: object | string, msg?: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
