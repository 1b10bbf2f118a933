/**
 * Helpers shared by the configuration's tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError, type HttpModuleConfig, type ModuleConfig } from "../config.ts";

/**
 * The example configuration of the exporter_exporter README, verbatim
 * (including the whitespace-only line after cadvisor).
 */
export const README_EXAMPLE = Deno.readTextFileSync(
  new URL("../testdata/expexp_readme.yaml", import.meta.url),
);

export function http(module: ModuleConfig | undefined): HttpModuleConfig {
  assert.ok(module !== undefined && module.method === "http");
  return module;
}

export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

export async function configErrorAsync(fn: () => Promise<unknown>): Promise<ConfigError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

export const DEFAULT_TLS = {
  insecureSkipVerify: false,
  clientCertificate: undefined,
  rootCaFile: undefined,
  caCertFile: undefined,
  trustedCaFiles: [],
  serverName: undefined,
};
