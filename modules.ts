/**
 * The modules Hanse runs, in one array (DESIGN.md §2): the broker loads exactly these, in
 * dependency order. Add a feature by adding its module here.
 */
import { blockingModule } from "./extensions/blocking/blocking.ts";
import { carbonsModule } from "./extensions/carbons/carbons.ts";
import { discoModule } from "./extensions/disco/disco.ts";
import { offlineModule } from "./extensions/offline/offline.ts";
import { pingModule } from "./extensions/ping/ping.ts";
import { presenceModule } from "./extensions/presence/presence.ts";
import { registerModule } from "./extensions/register/register.ts";
import { rosterModule } from "./extensions/roster/roster.ts";
import { timeModule } from "./extensions/time/time.ts";
import { versionModule } from "./extensions/version/version.ts";
import { provisioningModule } from "./provisioning/module.ts";
import type { Module } from "./server/modules/module.ts";
import { thingRegistryModule } from "./thing-registry/module.ts";

export const modules: readonly Module[] = [
  discoModule,
  pingModule,
  versionModule,
  timeModule,
  offlineModule,
  rosterModule,
  presenceModule,
  carbonsModule,
  blockingModule,
  registerModule,
  thingRegistryModule,
  provisioningModule,
];
