// End-to-end against the real gateway (`nova serve` from the repo's venv) serving dist/ at `/`,
// relaying to the fake vLLM upstream (backend/tests/fakes/upstream.py). Proves the UI speaks
// the gateway's actual SSE, error and cancellation behaviour, not just our own fake's.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { launchBrowser } from "./launch.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const venv = process.env.NOVA_VENV ?? join(root, ".venv");
const distDir = join(root, "frontend/dist");
const outDir = join(root, "frontend/test-results");
const KEY = "sk-nova-ui-e2e-0123456789abcdef";
const MODEL = "fake-model";
const TIMEOUT = 20_000;

if (!existsSync(join(venv, "bin/nova"))) throw new Error(`${venv}/bin/nova missing: run make install`);
if (!existsSync(join(distDir, "index.html")))
  throw new Error("dist/ is missing: run scripts/build-frontend.sh");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function startProcess(cmd, args, opts) {
  const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  return { child, log: () => log };
}

async function waitFor(url, init, what, proc) {
  // Generous: the gateway loads the embedding model for in-process RAG at start-up.
  for (let i = 0; i < 900; i++) {
    if (proc.child.exitCode !== null) throw new Error(`${what} exited:\n${proc.log()}`);
    const ok = await fetch(url, init).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up:\n${proc.log()}`);
}

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
}

/** A collection with one small document, through the public API (the UI only reads collections). */
async function seedCollection(base) {
  const auth = { Authorization: `Bearer ${KEY}` };
  const created = await fetch(`${base}/v1/collections`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ id: "handbook", description: "Team handbook" }),
  });
  assert.equal(created.status, 201, await created.text());
  const form = new FormData();
  const doc = "# Streaming\n\nPress Stop to abort the fetch; the gateway cancels the upstream request.\n";
  form.append("file", new Blob([doc], { type: "text/markdown" }), "guide.md");
  const up = await fetch(`${base}/v1/collections/handbook/documents?wait=true`, {
    method: "POST",
    headers: auth,
    body: form,
  });
  assert.equal(up.status, 201, await up.text());
}

describe("Nova UI on the real gateway", () => {
  let upstream, gateway, browser, base, upstreamUrl, tmp;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "nova-ui-e2e-"));
    mkdirSync(outDir, { recursive: true });
    const [upPort, gwPort] = [await freePort(), await freePort()];
    upstreamUrl = `http://127.0.0.1:${upPort}`;
    // 120 tokens, 25 ms apart: a 3 s answer, long enough to stop half-way.
    upstream = startProcess(
      join(venv, "bin/python"),
      [
        "-m",
        "tests.fakes.upstream",
        "--port",
        String(upPort),
        "--model",
        MODEL,
        "--tokens",
        "120",
        "--itl",
        "0.025",
      ],
      { cwd: join(root, "backend") },
    );
    await waitFor(`${upstreamUrl}/v1/models`, {}, "fake upstream", upstream);
    const models = join(tmp, "models.yaml");
    writeFileSync(
      models,
      `models:\n  ${MODEL}:\n    context_window: 4096\n    deployments:\n      - base_url: ${upstreamUrl}/v1\n`,
    );
    base = `http://127.0.0.1:${gwPort}`;
    gateway = startProcess(join(venv, "bin/nova"), ["serve"], {
      cwd: tmp,
      env: {
        ...process.env,
        NOVA_ENV: "dev",
        NOVA_PORT: String(gwPort),
        NOVA_MODELS_FILE: models,
        NOVA_ADMIN_API_KEY: KEY,
        NOVA_STATIC_DIR: distDir,
        NOVA_DATA_DIR: join(tmp, "data"),
        NOVA_LOG_LEVEL: "WARNING",
        HF_HUB_OFFLINE: "1",
      },
    });
    await waitFor(`${base}/v1/models`, { headers: { Authorization: `Bearer ${KEY}` } }, "gateway", gateway);
    await seedCollection(base);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    for (const p of [gateway, upstream]) {
      if (p && p.child.exitCode === null) {
        p.child.kill("SIGTERM");
        await new Promise((r) => p.child.once("exit", r));
      }
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("signs in, streams, stops (cancelling upstream) and shows gateway errors", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(base);

    // The gateway's own 401 body is rendered.
    await page.getByLabel("API key").fill("sk-not-a-real-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    assert.match(await page.getByRole("alert").innerText(), /HTTP 401 · authentication_error/);

    await page.getByLabel("API key").fill(KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText(`Chatting with ${MODEL}`).waitFor();

    // A full streamed answer with usage from the final include_usage chunk.
    await page.getByLabel("Message").fill("Hello gateway");
    await page.keyboard.press("Enter");
    const answer = page.getByTestId("message-assistant").last();
    await answer.getByText("t119").waitFor();
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('[data-testid="message-assistant"]')].at(-1)?.dataset.status === "done",
    );
    assert.match(await answer.getByTestId("usage").innerText(), /\d+ \+ 120 = \d+ tokens/);

    // Stop half-way: the gateway sees the client go away and cancels the upstream request.
    const disconnects = await metric(base, "nova_client_disconnects_total");
    await page.getByLabel("Message").fill("Another one");
    await page.keyboard.press("Enter");
    const second = page.getByTestId("message-assistant").last();
    await second.getByText("t5", { exact: false }).waitFor();
    await page.getByRole("button", { name: "Stop" }).click();
    await second.getByText("stopped").waitFor();
    assert.ok(!(await second.getByTestId("answer").innerText()).includes("t119"));
    let cancelled = false;
    for (let i = 0; i < 100 && !cancelled; i++) {
      cancelled =
        (await metric(base, "nova_client_disconnects_total")) > disconnects &&
        (await metric(upstreamUrl, "vllm:num_requests_running")) === 0;
      if (!cancelled) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(cancelled, "gateway counted the disconnect and the upstream has nothing running");
    await page.screenshot({ path: join(outDir, "gateway.png") });

    // Grounded answer: pick the collection, get the gateway's citations under the reply.
    await page.getByRole("button", { name: "Documents" }).click();
    await page.getByLabel("handbook").check();
    await page.getByRole("heading", { level: 1 }).click(); // closes the picker
    await page.getByLabel("Message").fill("How do I stop an answer?");
    await page.keyboard.press("Enter");
    const grounded = page.getByTestId("message-assistant").last();
    await grounded.getByText("t119").waitFor();
    const cites = grounded.getByTestId("citations");
    await cites.getByText("1 source").click();
    assert.match(await cites.innerText(), /guide\.md\s*handbook · chunk 0 · score \d\.\d{3}/);
    assert.match(await cites.innerText(), /Press Stop to abort the fetch/);
    await page.screenshot({ path: join(outDir, "gateway-rag.png") });
    await page.getByRole("button", { name: "Documents: 1" }).click();
    await page.getByLabel("handbook").uncheck();
    await page.getByRole("heading", { level: 1 }).click();

    // An unknown model: the gateway's OpenAI error JSON shows on the reply.
    await page.getByLabel("Model").evaluate((el) => {
      const opt = document.createElement("option");
      opt.value = opt.textContent = "no-such-model";
      el.append(opt);
    });
    await page.getByLabel("Model").selectOption("no-such-model");
    await page.getByLabel("Message").fill("Which model?");
    await page.keyboard.press("Enter");
    const alert = page.getByTestId("message-assistant").last().getByRole("alert");
    const text = await alert.innerText();
    assert.match(text, /does not exist/);
    assert.match(text, /HTTP 404 · invalid_request_error · code model_not_found · param model · request \w+/);
    assert.deepEqual(errors, []);
    await context.close();
  });
});
