/**
 * Checks what a client announces before it enters the registry.
 *
 * @module
 */

const LABEL_NAME_REGEXP = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Host names, IPv4 and IPv6 literals; nothing that could change a URL's path,
// credentials or port.
const FQDN_REGEXP =
  /^[a-zA-Z0-9_]([a-zA-Z0-9_.-]*[a-zA-Z0-9_])?\.?$|^(?=.*:.*:)[0-9a-fA-F:.]+(%[a-zA-Z0-9]+)?$/;
const MODULE_REGEXP = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/;

/**
 * Returns why an fqdn cannot be registered, or null when it can.
 *
 * @param fqdn The announced name.
 * @returns A reason, or null.
 */
export function fqdnProblem(fqdn: string): string | null {
  if (fqdn === "") return "fqdn is empty";
  if (fqdn.length > 253) return `fqdn is longer than 253 characters`;
  if (!FQDN_REGEXP.test(fqdn)) {
    return `fqdn ${JSON.stringify(fqdn)} is not a host name or IP address`;
  }
  return null;
}

/**
 * Returns why a client's labels cannot be published, or null.
 *
 * @param labels The announced labels.
 * @returns A reason, or null.
 */
export function labelsProblem(labels: Record<string, string>): string | null {
  const names = Object.keys(labels);
  if (names.length > 64) return "more than 64 labels";
  for (const name of names) {
    if (!LABEL_NAME_REGEXP.test(name) || name.startsWith("__")) {
      return `label name ${JSON.stringify(name)} is not a valid Prometheus label name`;
    }
    if (labels[name]!.length > 1024) {
      return `label ${name} is longer than 1024 characters`;
    }
  }
  return null;
}

/**
 * Returns why a module list cannot be announced, or null.
 *
 * @param modules The announced module names.
 * @returns A reason, or null.
 */
export function modulesProblem(modules: readonly string[]): string | null {
  if (modules.length > 1024) return "more than 1024 modules";
  for (const name of modules) {
    if (!MODULE_REGEXP.test(name) || name.length > 128) {
      return `module name ${JSON.stringify(name)} is not valid`;
    }
  }
  return null;
}
