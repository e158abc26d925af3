// The one core.wasm instance of this isolate, shared by the Worker (index.ts) and the container
// class (container.ts): every decision and every check of a setting is made by the C core.

import coreModule from "./core.wasm";
import { Core } from "../core-abi.mjs";

export const core = new Core(new WebAssembly.Instance(coreModule, {}));

/** The string-valued settings of env (bindings such as the Durable Object namespace left out). */
export function stringSettings(env: object): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === "string") out[k] = v;
  return out;
}

/**
 * What a container of this Worker receives from `env`: every setting of `serena-remote run`
 * (src/core/runcfg.c) that is set, as run's own table names them, and the problems run would
 * have with them (the same rules, checked before any container starts).
 */
export function containerSettings(env: object): {
  vars: Record<string, string>;
  errors: string[];
  persistence: "disabled" | "ok" | "degraded";
  persistenceMissing: string;
} {
  const s = stringSettings(env);
  const r = core.runSettings(s);
  const vars: Record<string, string> = {};
  for (const name of r.forward) vars[name] = s[name];
  return { vars, errors: r.errors, persistence: r.persistence, persistenceMissing: r.persistence_missing };
}
