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
 * The most a client may announce in its PollRequest, field by field. Far
 * above what real clients send (a version like "0.9.1", a few labels, tens
 * of modules, one entry per proxy address), far below the 1 MiB message
 * limit, so that a registration costs the registry a few KiB at most.
 */
export const IDENTITY_LIMITS: {
  readonly fqdnBytes: number;
  readonly versionBytes: number;
  readonly labels: number;
  readonly labelNameBytes: number;
  readonly labelValueBytes: number;
  readonly modules: number;
  readonly moduleNameBytes: number;
  readonly proxies: number;
  readonly proxyBytes: number;
} = {
  fqdnBytes: 253,
  versionBytes: 128,
  labels: 32,
  labelNameBytes: 128,
  labelValueBytes: 1024,
  modules: 256,
  moduleNameBytes: 128,
  proxies: 32,
  proxyBytes: 512,
};

/** What {@linkcode identityProblem} checks. */
export interface AnnouncedIdentity {
  fqdn: string;
  labels: Record<string, string>;
  version: string;
  modules: readonly string[];
  proxies?: readonly string[] | undefined;
}

/**
 * UTF-8 length of a string, without encoding it.
 *
 * @param text The string.
 * @returns Its length in bytes.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) bytes += code >= 0x800 && (code < 0xd800 || code > 0xdfff) ? 2 : 1;
  }
  return bytes;
}

/** Estimated bytes a record costs beyond its strings (objects, maps, session). */
export const RECORD_OVERHEAD_BYTES = 512;
/** Estimated bytes each string of a record costs beyond its characters. */
export const STRING_OVERHEAD_BYTES = 32;

/**
 * Estimates what a registration costs the registry: the UTF-8 bytes of its
 * strings, {@linkcode STRING_OVERHEAD_BYTES} per string and
 * {@linkcode RECORD_OVERHEAD_BYTES} per record.
 *
 * @param identity The announced identity.
 * @returns Bytes.
 */
export function identityBytes(identity: AnnouncedIdentity): number {
  let strings = 2;
  let bytes = utf8Length(identity.fqdn) + utf8Length(identity.version);
  for (const [name, value] of Object.entries(identity.labels)) {
    strings += 2;
    bytes += utf8Length(name) + utf8Length(value);
  }
  for (const list of [identity.modules, identity.proxies ?? []]) {
    for (const item of list) {
      strings++;
      bytes += utf8Length(item);
    }
  }
  return RECORD_OVERHEAD_BYTES + strings * STRING_OVERHEAD_BYTES + bytes;
}

/** A refused identity: the PollRequest field and why. */
export interface IdentityProblem {
  /** The PollRequest field, e.g. "version" or "labels". */
  field: string;
  /** Names the field, the limit and the value's size. */
  message: string;
}

/**
 * Checks everything a client announces: names (see {@linkcode fqdnProblem},
 * {@linkcode labelsProblem}, {@linkcode modulesProblem}) and sizes (see
 * {@linkcode IDENTITY_LIMITS}), and the estimate of the whole.
 *
 * @param identity The announced identity.
 * @param maxBytes Largest {@linkcode identityBytes} accepted; 0 for no limit.
 * @returns The first problem, or null.
 */
export function identityProblem(
  identity: AnnouncedIdentity,
  maxBytes = 0,
): IdentityProblem | null {
  const L = IDENTITY_LIMITS;
  const fqdn = fqdnProblem(identity.fqdn);
  if (fqdn !== null) return { field: "fqdn", message: fqdn };
  const version = utf8Length(identity.version);
  if (version > L.versionBytes) {
    return {
      field: "version",
      message: `version is ${version} bytes, more than the limit of ${L.versionBytes}`,
    };
  }
  const labels = labelsProblem(identity.labels);
  if (labels !== null) return { field: "labels", message: labels };
  const modules = modulesProblem(identity.modules);
  if (modules !== null) return { field: "modules", message: modules };
  const proxies = identity.proxies ?? [];
  if (proxies.length > L.proxies) {
    return {
      field: "proxies",
      message: `${proxies.length} proxies, more than the limit of ${L.proxies}`,
    };
  }
  for (const proxy of proxies) {
    const size = utf8Length(proxy);
    if (size > L.proxyBytes) {
      return {
        field: "proxies",
        message: `a proxy entry is ${size} bytes, more than the limit of ${L.proxyBytes}`,
      };
    }
  }
  if (maxBytes > 0) {
    const total = identityBytes(identity);
    if (total > maxBytes) {
      return {
        field: "PollRequest",
        message:
          `the registration would take about ${total} bytes, more than --registration.max-identity-bytes (${maxBytes})`,
      };
    }
  }
  return null;
}

/**
 * Returns why an fqdn cannot be registered, or null when it can.
 *
 * @param fqdn The announced name.
 * @returns A reason, or null.
 */
export function fqdnProblem(fqdn: string): string | null {
  if (fqdn === "") return "fqdn is empty";
  if (fqdn.length > IDENTITY_LIMITS.fqdnBytes) {
    return `fqdn is ${fqdn.length} bytes, more than the limit of ${IDENTITY_LIMITS.fqdnBytes}`;
  }
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
  const L = IDENTITY_LIMITS;
  const names = Object.keys(labels);
  if (names.length > L.labels) {
    return `${names.length} labels, more than the limit of ${L.labels}`;
  }
  for (const name of names) {
    if (name.length > L.labelNameBytes) {
      return `a label name is ${name.length} bytes, more than the limit of ${L.labelNameBytes}`;
    }
    if (!LABEL_NAME_REGEXP.test(name) || name.startsWith("__")) {
      return `label name ${JSON.stringify(name)} is not a valid Prometheus label name`;
    }
    const size = utf8Length(labels[name]!);
    if (size > L.labelValueBytes) {
      return `label ${name}'s value is ${size} bytes, more than the limit of ${L.labelValueBytes}`;
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
  const L = IDENTITY_LIMITS;
  if (modules.length > L.modules) {
    return `${modules.length} modules, more than the limit of ${L.modules}`;
  }
  for (const name of modules) {
    if (name.length > L.moduleNameBytes) {
      return `a module name is ${name.length} bytes, more than the limit of ${L.moduleNameBytes}`;
    }
    if (!MODULE_REGEXP.test(name)) {
      return `module name ${JSON.stringify(name)} is not valid`;
    }
  }
  return null;
}
