/**
 * Structured JSON logs (pino). Never log passwords or SASL payloads; stanza contents only at debug.
 */
import { pino } from "pino";

export type Logger = pino.Logger;
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export function createLogger(level: LogLevel = "info", destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "hanse" },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Defence in depth: these keys are never written, whoever logs them.
      redact: { paths: ["password", "*.password", "secret", "*.secret"], censor: "[redacted]" },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything (tests, CLI tools that only print results). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
