/**
 * The deployment examples in deploy/ are exercised: the Kubernetes manifests
 * parse and use only flags the programs have; the Prometheus configuration
 * passes promtool; the systemd units' command lines start real proxies and a
 * client (only the paths and ports are replaced), and the proxy drains and
 * exits cleanly on the unit's stop signal.
 */

import assert from "node:assert/strict";
import { parse, parseAllDocuments } from "yaml";
import { CLIENT_FLAGS } from "../../client/settings.ts";
import type { FlagSpec } from "../../lib/flags.ts";
import { PROXY_FLAGS } from "../../proxy/settings.ts";
import {
  DENO,
  denoEnv,
  hasExecutable,
  ROOT,
  spawn,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";
import { tempDir } from "../fixture.ts";

const DEPLOY = `${ROOT}deploy`;
const PROGRAMS: Record<string, { flags: readonly FlagSpec[]; source: string }> = {
  "pushprox-proxy/main.js": { flags: PROXY_FLAGS, source: `${ROOT}proxy/main.ts` },
  "pushprox-client/main.js": { flags: CLIENT_FLAGS, source: `${ROOT}client/main.ts` },
};

/** Splits a command line at the program file: deno flags, program, its flags. */
function splitCommand(argv: readonly string[]): {
  denoArgs: string[];
  program: keyof typeof PROGRAMS;
  args: string[];
} {
  const index = argv.findIndex((arg) => Object.keys(PROGRAMS).some((p) => arg.endsWith(`/${p}`)));
  assert.ok(index > 0, `no pushprox program in ${argv.join(" ")}`);
  const program = argv[index]!.split("/").slice(-2).join("/");
  return { denoArgs: argv.slice(0, index), program, args: argv.slice(index + 1) };
}

/** Fails unless every `--flag` is one the program declares. */
function assertKnownFlags(program: keyof typeof PROGRAMS, args: readonly string[]): void {
  const known = new Set(PROGRAMS[program]!.flags.map((f) => f.name));
  for (const arg of args) {
    assert.match(arg, /^--/, `${program}: "${arg}" is not a flag`);
    const name = arg.slice(2).split("=", 1)[0]!.replace(/^no-/, "");
    assert.ok(known.has(name), `${program}: --${name} is not a flag of the program`);
  }
}

function flagValue(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

function seconds(duration: string): number {
  const match = /^(\d+)(s|m)$/.exec(duration);
  assert.ok(match, `duration ${duration}`);
  return Number(match[1]) * (match[2] === "m" ? 60 : 1);
}

/** The [Service] settings of a systemd unit. */
async function readUnit(name: string): Promise<Map<string, string>> {
  const text = await Deno.readTextFile(`${DEPLOY}/systemd/${name}`);
  const settings = new Map<string, string>();
  let section = "";
  for (const line of text.split("\n")) {
    const header = /^\[(\w+)\]$/.exec(line.trim());
    if (header) section = header[1]!;
    const pair = /^(\w+)=(.*)$/.exec(line);
    if (pair && section === "Service") settings.set(pair[1]!, pair[2]!);
  }
  return settings;
}

async function manifests(): Promise<Record<string, unknown>[]> {
  const documents: Record<string, unknown>[] = [];
  for (const file of ["proxy.yaml", "client-daemonset.yaml"]) {
    const text = await Deno.readTextFile(`${DEPLOY}/kubernetes/${file}`);
    for (const document of parseAllDocuments(text)) {
      assert.deepEqual(document.errors, [], file);
      documents.push(document.toJS());
    }
  }
  return documents;
}

// deno-lint-ignore no-explicit-any
type Any = any;

Deno.test("Kubernetes manifests: 2 proxy replicas, a headless Service, clients on it, known flags", async () => {
  const docs = await manifests() as Any[];
  const deployment = docs.find((d) => d.kind === "Deployment");
  const daemonSet = docs.find((d) => d.kind === "DaemonSet");
  const services = docs.filter((d) => d.kind === "Service");
  assert.equal(deployment.spec.replicas, 2);
  const podLabels = deployment.spec.template.metadata.labels;
  const headless = services.find((s) => s.spec.clusterIP === "None");
  assert.ok(headless, "a headless Service");
  assert.deepEqual(headless.spec.selector, podLabels);
  assert.ok(services.some((s) => s !== headless), "a load-balanced Service for Prometheus");

  const unitDenoArgs = new Map<string, string[]>();
  for (const unit of ["pushprox-proxy.service", "pushprox-client.service"]) {
    const settings = await readUnit(unit);
    const start = settings.get("ExecStart")!.split(" ");
    const { denoArgs, program } = splitCommand(start);
    unitDenoArgs.set(program, denoArgs.slice(1));
    // The bundle's import analysis is cached before each start (a cold
    // DENO_DIR costs ~17 MiB of RSS for the process's life).
    const programPath = start[denoArgs.length]!;
    assert.equal(settings.get("ExecStartPre"), `${denoArgs[0]} cache ${programPath}`, unit);
  }

  for (const workload of [deployment, daemonSet]) {
    const [main] = workload.spec.template.spec.containers;
    const { denoArgs: mainDenoArgs } = splitCommand(main.args);
    const [cache] = workload.spec.template.spec.initContainers;
    assert.deepEqual(
      cache.args,
      ["cache", main.args[mainDenoArgs.length]],
      "init container caches",
    );
    assert.deepEqual(cache.volumeMounts, main.volumeMounts, "it sees the main container's files");
    assert.deepEqual(
      cache.env.find((e: Any) => e.name === "DENO_DIR"),
      main.env.find((e: Any) => e.name === "DENO_DIR"),
    );
    for (const container of workload.spec.template.spec.containers) {
      const { denoArgs, program, args } = splitCommand(container.args);
      assertKnownFlags(program, args);
      // Same Deno permissions as the systemd units.
      assert.deepEqual(denoArgs, unitDenoArgs.get(program), `${program} permissions`);
      assert.equal(container.readinessProbe.httpGet.path, "/-/ready");
      assert.equal(container.livenessProbe.httpGet.path, "/-/healthy");
      if (program === "pushprox-proxy/main.js") {
        const drain = seconds(flagValue(args, "web.drain-timeout")!);
        assert.ok(workload.spec.template.spec.terminationGracePeriodSeconds > drain);
      } else {
        const url = new URL(flagValue(args, "proxy-url")!);
        const ns = headless.metadata.namespace;
        assert.equal(url.hostname, `${headless.metadata.name}.${ns}.svc.cluster.local`);
        assert.equal(url.port, String(headless.spec.ports[0].port));
      }
    }
  }
});

/** Kubernetes' own models of its API objects, with the API's JSON schemas (test-only, deno.dev.lock). */
async function apiModels(): Promise<Record<string, new (o: Any) => { validate(): void }>> {
  // deno-lint-ignore no-import-prefix
  const { Deployment } = await import("npm:kubernetes-models@5.1.0/apps/v1/Deployment");
  // deno-lint-ignore no-import-prefix
  const { DaemonSet } = await import("npm:kubernetes-models@5.1.0/apps/v1/DaemonSet");
  // deno-lint-ignore no-import-prefix
  const { Service } = await import("npm:kubernetes-models@5.1.0/v1/Service");
  // deno-lint-ignore no-import-prefix
  const { ConfigMap } = await import("npm:kubernetes-models@5.1.0/v1/ConfigMap");
  return { Deployment, DaemonSet, Service, ConfigMap };
}

/** Kubernetes refuses a ConfigMap whose data (keys and values) exceeds 1 MiB. */
const CONFIGMAP_MAX_BYTES = 1024 * 1024;

Deno.test("Kubernetes manifests pass the API's schemas (kubernetes-models)", async () => {
  const models = await apiModels();
  const docs = await manifests() as Any[];
  assert.ok(docs.length >= 4);
  for (const doc of docs) {
    const Model = models[doc.kind];
    assert.ok(Model, `no schema for kind ${doc.kind}`);
    assert.doesNotThrow(() => new Model(doc).validate(), `${doc.kind} ${doc.metadata?.name}`);
  }
  // The validator does catch mistakes.
  const broken = structuredClone(docs.find((d) => d.kind === "Deployment"));
  broken.spec.replicas = "two";
  assert.throws(() => new models.Deployment!(broken).validate(), /replicas must be integer/);
});

Deno.test({
  name: "deno task bundle output fits the deploy README's ConfigMaps, one per program",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using temp = await tempDir({ prefix: "pushprox-configmap-" });
    const dir = temp.path;
    // The bundle task's own commands, writing to a temporary dist/.
    const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
    const task = config.tasks.bundle;
    const command: string = typeof task === "string" ? task : task.command;
    for (const step of command.split("&&")) {
      const words = step.trim().split(/\s+/).map((w) => w.replace(/^dist\//, `${dir}/`));
      // Clearing the last build's folders: the temporary dist/ is new.
      if (words[0] === "rm") continue;
      assert.equal(words[0], "deno");
      const output = await new Deno.Command(DENO, {
        args: words.slice(1),
        cwd: ROOT,
        env: denoEnv(),
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    }
    const readme = await Deno.readTextFile(`${DEPLOY}/README.md`);
    const creates = [
      ...readme.matchAll(/kubectl -n (\S+) create configmap (\S+) --from-file=dist\/(\S+)\/$/gm),
    ];
    assert.equal(creates.length, 2, "one ConfigMap per program in deploy/README.md");
    const models = await apiModels();
    const docs = await manifests() as Any[];
    for (const [, namespace, name, folder] of creates) {
      // kubectl's --from-file=FOLDER/: one key per file, named as the file.
      const data: Record<string, string> = {};
      for await (const entry of Deno.readDir(`${dir}/${folder}`)) {
        assert.ok(entry.isFile, `${folder}/${entry.name} is a file`);
        data[entry.name] = await Deno.readTextFile(`${dir}/${folder}/${entry.name}`);
      }
      assert.ok("main.js" in data, `${folder}/main.js`);
      const configMap = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace },
        data,
      };
      new models.ConfigMap!(configMap).validate();
      const bytes = new TextEncoder().encode(Object.entries(data).flat().join("")).byteLength;
      assert.ok(
        bytes <= CONFIGMAP_MAX_BYTES * 0.75,
        `ConfigMap ${name}: ${bytes} bytes; Kubernetes' limit is ${CONFIGMAP_MAX_BYTES} (keep a quarter free)`,
      );
      // The workload that mounts it runs the main.js it holds.
      const workload = docs.find((d) =>
        d.spec?.template?.spec?.volumes?.some((v: Any) => v.configMap?.name === name)
      );
      assert.ok(workload, `no workload mounts ConfigMap ${name}`);
      assert.equal(workload.metadata.namespace, namespace);
      const volume = workload.spec.template.spec.volumes.find((v: Any) =>
        v.configMap?.name === name
      );
      const container = workload.spec.template.spec.containers[0];
      const mount = container.volumeMounts.find((m: Any) => m.name === volume.name);
      assert.ok(
        container.args.includes(`${mount.mountPath}/main.js`),
        `${workload.metadata.name} runs ${mount.mountPath}/main.js`,
      );
    }
  },
});

Deno.test("the Prometheus example scrapes through the proxy with http_sd (promtool agrees)", async () => {
  const path = `${DEPLOY}/kubernetes/prometheus.yml`;
  const config = parse(await Deno.readTextFile(path)) as Any;
  const job = config.scrape_configs.find((j: Any) => j.proxy_url);
  assert.ok(job, "a job with proxy_url");
  assert.equal(new URL(job.http_sd_configs[0].url).pathname, "/clients");
  assert.equal(new URL(job.http_sd_configs[0].url).host, new URL(job.proxy_url).host);
  if (hasExecutable("/usr/bin/promtool")) {
    const output = await new Deno.Command("/usr/bin/promtool", {
      args: ["check", "config", "--syntax-only", path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  } else {
    console.warn("promtool not installed; checked the YAML only");
  }
});

Deno.test({
  name: "the systemd units' command lines start two proxies and a client that registers with both",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    try {
      const proxyUnit = await readUnit("pushprox-proxy.service");
      const clientUnit = await readUnit("pushprox-client.service");
      const proxyLine = proxyUnit.get("ExecStart")!;
      const clientLine = clientUnit.get("ExecStart")!;
      assert.doesNotMatch(proxyLine + clientLine, /["'\\$%]/, "no quoting or specifiers to expand");
      const proxyCommand = splitCommand(proxyLine.split(" "));
      const clientCommand = splitCommand(clientLine.split(" "));
      assertKnownFlags(proxyCommand.program, proxyCommand.args);
      assertKnownFlags(clientCommand.program, clientCommand.args);
      assert.equal(proxyCommand.denoArgs[0], "/usr/local/bin/deno");
      assert.ok(
        seconds(proxyUnit.get("TimeoutStopSec")!) >
          seconds(flagValue(proxyCommand.args, "web.drain-timeout")!),
        "systemd waits longer than the drain",
      );

      // The units' command lines, with this machine's deno and sources and
      // ephemeral loopback ports.
      const proxies = [];
      for (let i = 0; i < 2; i++) {
        const proxy = await startProxyProcess([]);
        await proxy.process.stop();
        const args = proxyCommand.args.map((arg) =>
          arg.startsWith("--web.listen-address=")
            ? `--web.listen-address=127.0.0.1:${proxy.port}`
            : arg
        );
        const process = spawn(DENO, [
          ...proxyCommand.denoArgs.slice(1),
          PROGRAMS[proxyCommand.program]!.source,
          ...args,
        ], { env: denoEnv() });
        processes.push(process);
        await process.waitFor(/msg="Listening on" address=127\.0\.0\.1:\d+/);
        proxies.push({ process, url: `http://127.0.0.1:${proxy.port}` });
      }
      const urls = proxies.map((p) => `${p.url}/`);
      const clientArgs = clientCommand.args.map((arg) =>
        arg.startsWith("--proxy-url=")
          ? `--proxy-url=${urls.shift()}`
          : arg.startsWith("--metrics-addr=")
          ? "--metrics-addr=127.0.0.1:0"
          : arg
      );
      assert.deepEqual(urls, [], "the unit names two proxies");
      const client = spawn(DENO, [
        ...clientCommand.denoArgs.slice(1),
        PROGRAMS[clientCommand.program]!.source,
        ...clientArgs,
      ], { env: denoEnv() });
      processes.push(client);
      for (const proxy of proxies) {
        await waitUntil(
          async () => {
            const groups = await (await fetch(`${proxy.url}/clients`)).json();
            return groups.length === 1 || undefined;
          },
          15_000,
          `the client to register with ${proxy.url}`,
        );
      }
      // systemctl stop: SIGTERM, drain, exit 0.
      proxies[0]!.process.kill("SIGTERM");
      const status = await proxies[0]!.process.status;
      assert.equal(status.code, 0);
      assert.match(proxies[0]!.process.output(), /msg=Drained/);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
    }
  },
});
