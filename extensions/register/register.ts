/**
 * In-band registration (XEP-0077): closed to anonymous clients by default; devices create their
 * accounts with a form signed by an API key (XEP-0348). After authentication: the registration
 * data, password change and account removal.
 * References: XEP-0077 §3.1 (registration, before authentication on a client stream; the stream
 * feature), §3.2 (cancellation), §3.3 (password change), §8 (errors); XEP-0348 §3.1, §4 (the
 * signature feature in disco); RFC 6120 §5.3.1 (only after TLS where TLS is required: the c2s
 * stream offers pre-authentication iqs only then).
 */
import { Element } from "ltx";
import { z } from "zod";
import type { AccountStore } from "../../server/accounts/store.ts";
import type { IqHandler, Module, ModuleApi, PreAuthIqHandler } from "../../server/modules/module.ts";
import { StanzaError } from "../../server/xml/errors.ts";
import { createApiKeyStore } from "./api-keys.ts";
import { NS_DATA, NS_REGISTER, NS_REGISTER_FEATURE, readSubmittedForm, registrationForm } from "./form.ts";
import { registerMigrations } from "./migrations.ts";
import { NS_SIGNATURE } from "./signature.ts";
import {
  checkCredentials,
  createAccount,
  type RegistrationDeps,
  registerWithApiKey,
} from "./signed-registration.ts";

const configSchema = z
  .object({
    /** Let anyone register without an API key (XEP-0077 as is). */
    open: z.boolean().default(false),
    /** With `open`: accounts one address may create per hour without a key. */
    open_per_hour_per_ip: z.number().int().min(1).default(5),
    /** Registration requests (signed or not) one address may send per minute. */
    attempts_per_minute_per_ip: z.number().int().min(1).default(30),
    /** Seconds a signature's oauth_timestamp may be off the server's clock. */
    signature_window: z.number().int().min(1).max(86_400).default(300),
    /** Accept XEP-0348 PLAINTEXT signatures (the secret itself; TLS is always on here). */
    allow_plaintext: z.boolean().default(false),
    /** XEP-0077 §3.3 and §3.2 for authenticated users. */
    password_change: z.boolean().default(true),
    cancel: z.boolean().default(true),
  })
  .strict();
type RegisterConfig = z.infer<typeof configSchema>;

/** A fixed-window counter per key (addresses), bounded in size. */
class WindowCounter {
  private readonly counts = new Map<string, { n: number; since: number }>();
  constructor(
    private readonly max: number,
    private readonly windowMs: number,
  ) {}
  /** Counts one more for `key`; false if that goes over the limit. */
  take(key: string): boolean {
    const now = Date.now();
    let e = this.counts.get(key);
    if (!e || now - e.since >= this.windowMs) {
      if (this.counts.size >= 100_000) this.counts.clear();
      e = { n: 0, since: now };
      this.counts.set(key, e);
    }
    e.n++;
    return e.n <= this.max;
  }
}

function preAuthHandlers(api: ModuleApi, config: RegisterConfig, deps: RegistrationDeps) {
  const attempts = new WindowCounter(config.attempts_per_minute_per_ip, 60_000);
  const openAccounts = new WindowCounter(config.open_per_hour_per_ip, 3_600_000);

  const get: PreAuthIqHandler = () => registrationForm(config.open);

  const set: PreAuthIqHandler = async ({ stanza, payload, stream }) => {
    if (!attempts.take(stream.remoteAddress)) {
      throw new StanzaError("resource-constraint", "too many registration attempts from this address");
    }
    // §3.2: cancelling needs an account, so authentication first.
    if (payload.getChild("remove"))
      throw new StanzaError("registration-required", "log in to remove an account");
    const x = payload.getChild("x", NS_DATA);
    const form = x ? readSubmittedForm(x) : undefined;
    if (form?.value("FORM_TYPE") === NS_SIGNATURE) {
      await registerWithApiKey(deps, form, { remoteAddress: stream.remoteAddress, to: stanza.attrs.to });
      return undefined;
    }
    if (!config.open) {
      throw new StanzaError(
        "not-allowed",
        "registration needs a form signed with an API key (XEP-0348, FORM_TYPE urn:xmpp:xdata:signature:oauth1)",
      );
    }
    // XEP-0077 §4: a form takes precedence over the plain fields.
    const username = form ? form.value("username") : payload.getChildText("username");
    const password = form ? form.value("password") : payload.getChildText("password");
    const name = checkCredentials(username ?? undefined, password ?? undefined);
    if (!openAccounts.take(stream.remoteAddress)) {
      throw new StanzaError("resource-constraint", "too many accounts created from this address: try later");
    }
    await createAccount(deps.accounts, name, password!);
    api.log.info({ user: name, remote: stream.remoteAddress }, "account created by in-band registration");
    return undefined;
  };
  return { get, set };
}

function accountHandlers(api: ModuleApi, config: RegisterConfig, accounts: AccountStore) {
  /** Only this server's own users have registration data here (RFC 6121 §8.5.1: say nothing else). */
  const local = (from: { domain: string; local: string }) => {
    if (from.domain !== api.domain || !from.local) throw new StanzaError("service-unavailable");
  };
  const get: IqHandler = ({ from }) => {
    local(from);
    // §3.1: an entity already registered gets <registered/> and its data.
    const query = new Element("query", { xmlns: NS_REGISTER });
    query.c("registered");
    query.c("username").t(from.local);
    return query;
  };
  const set: IqHandler = async ({ from, payload }) => {
    local(from);
    if (payload.getChild("remove")) {
      // §3.2: <remove/> must be the only child.
      if (payload.getChildElements().length !== 1)
        throw new StanzaError("bad-request", "remove must come alone");
      if (!config.cancel) throw new StanzaError("not-allowed", "accounts are not removed in-band here");
      await accounts.delete(from.local);
      api.log.info({ user: from.bare }, "account removed in-band");
      // §3.2: the result first, then the streams of the account end.
      setTimeout(() => {
        for (const s of api.sessionsOf(from.bare)) s.close("not-authorized", "the account was removed");
      }, 100).unref();
      return undefined;
    }
    // §3.3: password change.
    const username = payload.getChildText("username");
    const password = payload.getChildText("password");
    if (!username || !password) throw new StanzaError("bad-request", "username and password are required");
    if (!config.password_change)
      throw new StanzaError("not-allowed", "passwords are not changed in-band here");
    const name = checkCredentials(username, password);
    if (name !== from.local) throw new StanzaError("not-allowed", "only your own password");
    await accounts.setPassword(name, password);
    return undefined;
  };
  return { get, set };
}

export const registerModule: Module = {
  name: "register",
  xeps: ["0077", "0348"],
  migrations: registerMigrations,
  configSchema,
  start(api) {
    const config = api.config<RegisterConfig>();
    const accounts = api.use<AccountStore>("accounts");
    const keys = createApiKeyStore(api.db);
    const deps: RegistrationDeps = {
      accounts,
      keys,
      domain: api.domain,
      log: api.log,
      window: config.signature_window,
      allowPlaintext: config.allow_plaintext,
    };
    const pre = preAuthHandlers(api, config, deps);
    api.preAuthIq("get", NS_REGISTER, "query", pre.get);
    api.preAuthIq("set", NS_REGISTER, "query", pre.set);
    api.preAuthStreamFeature(new Element("register", { xmlns: NS_REGISTER_FEATURE })); // §3.1
    const post = accountHandlers(api, config, accounts);
    for (const to of ["host", "bare"] as const) {
      api.iq("get", NS_REGISTER, "query", post.get, { to });
      api.iq("set", NS_REGISTER, "query", post.set, { to });
    }
    api.feature(NS_SIGNATURE); // XEP-0348 §4
    api.every(60_000, () => keys.purgeNonces(config.signature_window * 2));
  },
};
