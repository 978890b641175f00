/** Where the emulator reports refused connections and internal errors; console-shaped, so `console` itself fits. */
export interface Logger {
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}
