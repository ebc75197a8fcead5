/**
 * Software version of the server.
 * References: XEP-0092 §3 (query and result), §5 (security: revealing the OS helps attackers, so it
 * is off unless the operator turns it on).
 */
import { readFileSync } from "node:fs";
import { platform, release } from "node:os";
import { Element } from "ltx";
import { z } from "zod";
import type { Module } from "../../server/modules/module.ts";
import { NS } from "../../server/xml/namespaces.ts";

const configSchema = z.object({ show_os: z.boolean().default(false) }).strict();

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

export const versionModule: Module = {
  name: "version",
  xeps: ["0092"],
  configSchema,
  start(api) {
    const { show_os } = api.config<z.infer<typeof configSchema>>();
    const version = packageVersion();
    api.iq("get", NS.version, "query", () => {
      const query = new Element("query", { xmlns: NS.version });
      query.c("name").t("Hanse");
      query.c("version").t(version);
      if (show_os) query.c("os").t(`${platform()} ${release()}`);
      return query;
    });
  },
};
