/**
 * Entity time of the server.
 * References: XEP-0202 §3 (tzo and utc), XEP-0082 (date-time profiles).
 */
import { Element } from "ltx";
import type { Module } from "../../server/modules/module.ts";
import { NS } from "../../server/xml/namespaces.ts";

/** XEP-0082 TZD: "+hh:mm" / "-hh:mm" from a Date's local offset. */
export function tzo(date: Date): string {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

export const timeModule: Module = {
  name: "time",
  xeps: ["0202"],
  start(api) {
    api.iq("get", NS.time, "time", () => {
      const now = new Date();
      const time = new Element("time", { xmlns: NS.time });
      time.c("tzo").t(tzo(now));
      time.c("utc").t(now.toISOString()); // XEP-0202 §3: UTC in XEP-0082 DateTime
      return time;
    });
  },
};
