/**
 * Certificates for tests, made with the `openssl` command: a small CA and
 * leaf certificates signed by it (with `CA:FALSE`, which rustls insists on),
 * including expired ones. Tests that need them skip, saying why, when
 * openssl is missing.
 *
 * @module
 */

import { hasExecutable } from "./support.ts";

/** The openssl binary, or null when it is not installed. */
export const OPENSSL: string | null = ["/usr/bin/openssl", "/usr/local/bin/openssl"].find(
  hasExecutable,
) ?? null;

/** Why certificate tests are skipped, or null when they can run. */
export const OPENSSL_MISSING: string | null = OPENSSL === null
  ? "openssl is not installed (apt-get install openssl)"
  : null;

/** A certificate and its key, as files and as PEM text. */
export interface CertPair {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const output = await new Deno.Command(OPENSSL!, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.code !== 0) {
    throw new Error(
      `openssl ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
}

async function pair(dir: string, name: string): Promise<CertPair> {
  const certFile = `${dir}/${name}.pem`;
  const keyFile = `${dir}/${name}.key`;
  return {
    certFile,
    keyFile,
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  };
}

/** A CA that signs leaves. */
export interface TestCa extends CertPair {
  /**
   * Issues a leaf certificate.
   *
   * @param name File name stem.
   * @param options Subject CN, SANs ("DNS:x", "IP:1.2.3.4"), usage, validity.
   */
  issue(name: string, options: LeafOptions): Promise<CertPair>;
}

/** Options for a leaf certificate. */
export interface LeafOptions {
  cn: string;
  /** subjectAltName entries, e.g. ["DNS:localhost", "IP:127.0.0.1"]. */
  sans?: string[];
  /** @default {"both"} */
  usage?: "server" | "client" | "both";
  /** Already expired (valid for one day in 2020). */
  expired?: boolean;
}

/**
 * Creates a CA in `dir`.
 *
 * @param dir A folder for the files.
 * @param name File name stem and CN.
 * @returns The CA.
 */
export async function createTestCa(dir: string, name = "ca"): Promise<TestCa> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "30",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  const ca = await pair(dir, name);
  let serial = 1;
  return {
    ...ca,
    async issue(leaf, options) {
      const usage = options.usage ?? "both";
      const eku = usage === "server"
        ? "serverAuth"
        : usage === "client"
        ? "clientAuth"
        : "serverAuth,clientAuth";
      const ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage=${eku}`,
        ...(options.sans && options.sans.length > 0
          ? [`subjectAltName=${options.sans.join(",")}`]
          : []),
      ].join("\n");
      await Deno.writeTextFile(`${dir}/${leaf}.ext`, ext + "\n");
      await openssl([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${leaf}.key`,
        "-out",
        `${leaf}.csr`,
        "-subj",
        `/CN=${options.cn}`,
      ], dir);
      if (options.expired) {
        // `openssl ca` can set dates in the past; `x509 -req` cannot.
        await Deno.mkdir(`${dir}/${leaf}-db`, { recursive: true });
        await Deno.writeTextFile(`${dir}/${leaf}-db/index.txt`, "");
        await Deno.writeTextFile(
          `${dir}/${leaf}-ca.cnf`,
          `[ca]\ndefault_ca=t\n[t]\ndatabase=${dir}/${leaf}-db/index.txt\nnew_certs_dir=${dir}/${leaf}-db\nserial=${dir}/${leaf}-db/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n`,
        );
        await Deno.writeTextFile(
          `${dir}/${leaf}-db/serial`,
          `${(serial++).toString(16).padStart(2, "0")}\n`,
        );
        await openssl([
          "ca",
          "-batch",
          "-config",
          `${leaf}-ca.cnf`,
          "-cert",
          `${name}.pem`,
          "-keyfile",
          `${name}.key`,
          "-in",
          `${leaf}.csr`,
          "-out",
          `${leaf}.pem`,
          "-startdate",
          "20200101000000Z",
          "-enddate",
          "20200102000000Z",
          "-extfile",
          `${leaf}.ext`,
          "-notext",
        ], dir);
      } else {
        await openssl([
          "x509",
          "-req",
          "-in",
          `${leaf}.csr`,
          "-CA",
          `${name}.pem`,
          "-CAkey",
          `${name}.key`,
          "-set_serial",
          String(1000 + serial++),
          "-out",
          `${leaf}.pem`,
          "-days",
          "30",
          "-extfile",
          `${leaf}.ext`,
        ], dir);
      }
      return await pair(dir, leaf);
    },
  };
}
