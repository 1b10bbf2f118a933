import assert from "node:assert/strict";
import { type ConfigFs, loadConfig, loadConfigDirs } from "../config.ts";
import { configErrorAsync, http, README_EXAMPLE } from "./_testing.ts";
import { tempDir } from "../../../tests/fixture.ts";

// ---- directories ------------------------------------------------------------

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  await using temp = await tempDir({ prefix: "expexp_config_test_" });
  const dir = temp.path;
  await fn(dir);
}

Deno.test("loadConfigDirs() loads one module per yml/yaml file", async () => {
  await withTempDir(async (dir) => {
    const d1 = `${dir}/expexp.d`;
    const d2 = `${dir}/more.d/`;
    await Deno.mkdir(d1);
    await Deno.mkdir(d2);
    await Deno.mkdir(`${d1}/sub.yaml`);
    await Deno.writeTextFile(`${d1}/node.yaml`, "method: http\nhttp:\n   port: 9100\n");
    await Deno.writeTextFile(`${d1}/mtail.yml`, "method: http\nhttp:\n   port: 3903\n");
    await Deno.writeTextFile(`${d1}/README.txt`, "not yaml");
    await Deno.writeTextFile(`${d1}/node.yaml.bak`, "not yaml");
    await Deno.writeTextFile(`${d2}/a.b.yaml`, "method: file\nfile: {path: /x}\n");
    const { modules, warnings, defaultModule } = await loadConfigDirs([d1, d2]);
    assert.deepEqual([...modules.keys()], ["mtail", "node", "a.b"]);
    assert.equal(http(modules.get("node")).http.port, 9100);
    assert.deepEqual(modules.get("node")?.source, {
      file: `${d1}/node.yaml`,
      line: 1,
    });
    assert.equal(modules.get("a.b")?.method, "file");
    assert.equal(defaultModule, undefined);
    assert.deepEqual(warnings, [
      `${d1}/README.txt: skipping non-yaml file`,
      `${d1}/node.yaml.bak: skipping non-yaml file`,
      `${d1}/sub.yaml: skipping non-yaml file`,
    ]);
  });
});

Deno.test("loadConfigDirs() applies --config.skip-dirs to missing directories only", async () => {
  await withTempDir(async (dir) => {
    const missing = `${dir}/missing.d`;
    const skipped = await loadConfigDirs([missing], { skipDirs: true });
    assert.equal(skipped.modules.size, 0);
    assert.deepEqual(skipped.warnings, [
      `${missing}: skipping non-existent config.dirs entry (--config.skip-dirs)`,
    ]);
    const error = await configErrorAsync(() => loadConfigDirs([missing]));
    assert.equal(error.file, missing);
    assert.match(error.message, /^.*missing\.d: cannot read directory: /);
    // A file where a directory is expected is not "missing".
    await Deno.writeTextFile(`${dir}/file.d`, "");
    await configErrorAsync(() => loadConfigDirs([`${dir}/file.d`], { skipDirs: true }));
  });
});

Deno.test("loadConfigDirs() rejects duplicates, bad names and bad files", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    await Deno.writeTextFile(`${dir}/a/node.yaml`, "method: file\nfile: {path: /x}\n");
    await Deno.writeTextFile(`${dir}/b/node.yml`, "method: file\nfile: {path: /y}\n");
    const duplicate = await configErrorAsync(() => loadConfigDirs([`${dir}/a`, `${dir}/b`]));
    assert.equal(
      duplicate.message,
      `${dir}/b/node.yml: module "node" is already defined at ${dir}/a/node.yaml:1`,
    );

    await Deno.mkdir(`${dir}/c`);
    await Deno.writeTextFile(`${dir}/c/.yaml`, "method: file\nfile: {path: /x}\n");
    const empty = await configErrorAsync(() => loadConfigDirs([`${dir}/c`]));
    assert.equal(empty.message, `${dir}/c/.yaml: module name must not be empty`);

    await Deno.mkdir(`${dir}/d`);
    await Deno.writeTextFile(`${dir}/d/bad.yaml`, "method: http\nhttp:\n  port: nope\n");
    const bad = await configErrorAsync(() => loadConfigDirs([`${dir}/d`]));
    assert.equal(
      bad.message,
      `${dir}/d/bad.yaml:3: http.port: expected an integer, got "nope"`,
    );
  });
});

Deno.test("loadConfig() combines --config.file and --config.dirs like upstream", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/expexp.yaml`, README_EXAMPLE + "defaultModule: node\n");
    await Deno.mkdir(`${dir}/expexp.d`);
    await Deno.writeTextFile(`${dir}/expexp.d/extra.yaml`, "method: http\nhttp:\n   port: 9200\n");
    const config = await loadConfig({
      file: `${dir}/expexp.yaml`,
      dirs: [`${dir}/expexp.d`],
    });
    assert.deepEqual([...config.modules.keys()], [
      "node",
      "mtail",
      "cadvisor",
      "netdata",
      "somescript",
      "extra",
    ]);
    assert.equal(config.defaultModule, "node");
    assert.equal(config.warnings.length, 2);

    await Deno.writeTextFile(`${dir}/expexp.d/node.yaml`, "method: http\nhttp:\n   port: 1\n");
    const duplicate = await configErrorAsync(() =>
      loadConfig({ file: `${dir}/expexp.yaml`, dirs: [`${dir}/expexp.d`] })
    );
    assert.equal(
      duplicate.message,
      `${dir}/expexp.d/node.yaml: module "node" is already defined at ${dir}/expexp.yaml:2`,
    );

    const onlyDirs = await loadConfig({ file: "", dirs: [`${dir}/expexp.d`] });
    assert.deepEqual([...onlyDirs.modules.keys()], ["extra", "node"]);

    const missing = await configErrorAsync(() => loadConfig({ file: `${dir}/nope.yaml` }));
    assert.match(missing.message, /nope\.yaml: cannot read file: /);
  });
});

Deno.test("loadConfig() warns about no modules and an unknown defaultModule", async () => {
  const files: Record<string, string> = {
    "expexp.yaml": "modules: {}\ndefaultModule: node\n",
  };
  const fs: ConfigFs = {
    readTextFile(path) {
      const text = files[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(path))
        : Promise.resolve(text);
    },
    readDir(path) {
      const missing = Object.assign(new Error(`no such directory ${path}`), {
        code: "ENOENT",
      });
      return {
        [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(missing) }),
      };
    },
  };
  const config = await loadConfig({
    file: "expexp.yaml",
    dirs: ["expexp.d"],
    skipDirs: true,
    fs,
  });
  assert.equal(config.modules.size, 0);
  assert.deepEqual(config.warnings, [
    "expexp.d: skipping non-existent config.dirs entry (--config.skip-dirs)",
    "no modules loaded from any config file",
    'expexp.yaml: defaultModule: "node" is not a defined module; requests without ?module= will get 404',
  ]);
});
