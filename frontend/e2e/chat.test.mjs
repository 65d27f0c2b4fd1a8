// End-to-end: the built UI in headless Debian Chromium against the fake SSE API (e2e/server.mjs).
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { launchBrowser } from "./launch.mjs";
import { GOOD_KEY, startServer, USER } from "./server.mjs";

const distDir = fileURLToPath(new URL("../dist", import.meta.url));
const outDir = fileURLToPath(new URL("../test-results", import.meta.url));
const TIMEOUT = 15_000;

if (!existsSync(`${distDir}/index.html`))
  throw new Error("dist/ is missing: run scripts/build-frontend.sh first");
mkdirSync(outDir, { recursive: true });

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => browser?.close());

async function open(server, viewport = { width: 1280, height: 820 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(server.url);
  return { page, context, errors };
}

async function signIn(page, key = GOOD_KEY) {
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function send(page, text) {
  await page.getByLabel("Message").fill(text);
  await page.keyboard.press("Enter");
}

const lastAnswer = (page) => page.getByTestId("message-assistant").last();

async function waitStatus(page, status) {
  await page.waitForFunction(
    (s) => [...document.querySelectorAll('[data-testid="message-assistant"]')].at(-1)?.dataset.status === s,
    status,
    { timeout: TIMEOUT },
  );
}

describe("Nova chat UI", () => {
  let server;
  const state = () => server.state;
  before(async () => {
    server = await startServer({ distDir });
  });
  after(async () => server.close());

  it("rejects a bad key, signs in, streams an answer with code, usage and history", async () => {
    const { page, context, errors } = await open(server);
    await signIn(page, "sk-wrong");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.match(await alert.innerText(), /Invalid API key/);
    assert.match(await alert.innerText(), /HTTP 401 · authentication_error · code invalid_api_key/);
    await page.screenshot({ path: `${outDir}/sign-in.png` });

    await signIn(page);
    await page.getByText("How can I help?").waitFor();
    assert.deepEqual(await page.getByLabel("Model").locator("option").allInnerTexts(), ["smollm2", "nano"]);

    await send(page, "How do I parse SSE?");
    await page.getByTestId("message-user").getByText("How do I parse SSE?").waitFor();
    // Mid-stream: the Stop button is shown while tokens arrive.
    await page.getByRole("button", { name: "Stop" }).waitFor();
    await waitStatus(page, "done");
    const answer = lastAnswer(page);
    assert.match(await answer.locator("pre code").innerText(), /line\.startsWith\('data: '\)/);
    assert.equal(await answer.locator("strong").innerText(), "minimal");
    assert.equal(await answer.locator("li").count(), 2);
    assert.match(
      await answer.getByTestId("usage").innerText(),
      /\d+ \+ \d+ = \d+ tokens\s+first token \d+ ms/,
    );
    await page.getByRole("button", { name: "Send" }).waitFor();

    const req = server.state.chatRequests.at(-1);
    assert.equal(req.stream, true);
    assert.deepEqual(req.stream_options, { include_usage: true });
    assert.equal(req.model, "smollm2");
    assert.ok(req.conversation_id, "a server conversation was created");
    assert.deepEqual(req.messages, [{ role: "user", content: "How do I parse SSE?" }]);

    const nav = page.getByRole("navigation", { name: "Conversations" });
    await nav.getByText("How do I parse SSE?").waitFor();
    await page.screenshot({ path: `${outDir}/chat.png` });

    // Reload: still signed in, history comes back from the server.
    await page.reload();
    await nav.getByText("How do I parse SSE?").click();
    await lastAnswer(page).locator("pre code").waitFor();
    assert.equal(await page.getByTestId("message-user").count(), 1);

    // Rename, then delete.
    await nav.getByRole("button", { name: "Rename How do I parse SSE?" }).click();
    await page.getByLabel("Conversation title").fill("SSE notes");
    await page.keyboard.press("Enter");
    await nav.getByText("SSE notes").waitFor();
    assert.deepEqual(
      [...server.state.conversations.values()].map((c) => [c.title, c.model]),
      [["SSE notes", "smollm2"]],
    );
    await nav.getByText("SSE notes").hover();
    await nav.getByRole("button", { name: "Delete SSE notes" }).click();
    await nav.getByRole("button", { name: "Delete", exact: true }).click();
    await page.getByText("No conversations yet.").waitFor();
    assert.equal(server.state.conversations.size, 0);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it("signs in with an account, refreshes an expired session transparently and revokes it on sign-out", async () => {
    const { page, context, errors } = await open(server);
    await page.getByRole("tab", { name: "Account" }).click();
    await page.getByLabel("Username").fill(USER.username);
    await page.getByLabel("Password").fill("wrong password");
    await page.getByRole("button", { name: "Sign in" }).click();
    assert.match(await page.getByRole("alert").innerText(), /Invalid username or password\./);
    await page.getByLabel("Password").fill(USER.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("How can I help?").waitFor();
    const stored = JSON.parse(await page.evaluate(() => localStorage.getItem("nova.auth")));
    assert.equal(stored.kind, "jwt");
    assert.equal(stored.username, USER.username);

    // The access token expires server-side: the next call gets a 401, refreshes, and retries.
    state().validTokens.delete(stored.token);
    const refreshes = state().refreshes;
    await send(page, "still there?");
    await waitStatus(page, "done");
    assert.equal(state().refreshes, refreshes + 1);
    const renewed = JSON.parse(await page.evaluate(() => localStorage.getItem("nova.auth")));
    assert.notEqual(renewed.token, stored.token);
    assert.equal(await page.locator("aside").getByText(USER.username, { exact: true }).count(), 1);

    const logouts = state().logouts.length;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("tab", { name: "API key" }).waitFor();
    // The revoke runs after the local sign-out: wait for it to reach the server.
    for (let i = 0; i < 100 && state().logouts.length === logouts; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(state().logouts.at(-1), {
      refresh: renewed.refreshToken,
      access: `Bearer ${renewed.token}`,
    });
    assert.deepEqual(errors, []);
    await context.close();
  });

  it("Stop aborts the stream: partial answer kept, server sees the disconnect", async () => {
    const { page, context } = await open(server);
    await signIn(page);
    const before = server.state.disconnects;
    await send(page, "tell me a long story");
    await lastAnswer(page).getByText("word3").waitFor();
    await page.getByRole("button", { name: "Stop" }).click();
    await waitStatus(page, "stopped");
    assert.match(await lastAnswer(page).getByTestId("usage").innerText(), /stopped/);
    // Esc stops too.
    await send(page, "another long story");
    await lastAnswer(page).getByText("word2").waitFor();
    await page.keyboard.press("Escape");
    await waitStatus(page, "stopped");
    const text = await lastAnswer(page).getByTestId("answer").innerText();
    assert.ok(!text.includes("word399"), "the stream was cut short");
    for (let i = 0; i < 50 && server.state.disconnects < before + 2; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.state.disconnects, before + 2);
    await context.close();
  });

  it("shows the OpenAI error of a failed request with its request id", async () => {
    const { page, context } = await open(server);
    await signIn(page);
    await send(page, "please trigger rate limit");
    await waitStatus(page, "error");
    const alert = lastAnswer(page).getByRole("alert");
    const text = await alert.innerText();
    assert.match(text, /Rate limit reached for requests per minute/);
    assert.match(
      text,
      /HTTP 429 · rate_limit_error · code rate_limited · retry after 7s · request req-429-abc/,
    );
    await page.screenshot({ path: `${outDir}/error.png` });
    await context.close();
  });

  it("grounds answers in selected collections and lists the citations", async () => {
    const { page, context } = await open(server);
    await signIn(page);
    await page.getByRole("button", { name: "Documents" }).click();
    await page.getByLabel("handbook").check();
    await page.getByText("How can I help?").click(); // closes the picker
    await send(page, "What are SSE streams?");
    await waitStatus(page, "done");
    assert.deepEqual(server.state.chatRequests.at(-1).rag, { collections: ["handbook"] });
    assert.deepEqual(await lastAnswer(page).locator("sup").allInnerTexts(), ["1", "2"]);
    const cites = lastAnswer(page).getByTestId("citations");
    await cites.getByText("2 sources").click();
    await cites.getByText("SSE streams are plain HTTP responses.").waitFor();
    assert.match(await cites.innerText(), /handbook\.md\s*handbook · chunk 3 · score 0\.912/);
    await page.screenshot({ path: `${outDir}/citations.png` });
    await context.close();
  });
});

describe("Nova chat UI without optional endpoints", () => {
  let server;
  before(async () => {
    server = await startServer({ distDir, conversations: false, collections: false, tokenDelayMs: 5 });
  });
  after(async () => server.close());

  it("falls back to stateless chat that resends the history, on a phone-sized screen", async () => {
    const { page, context, errors } = await open(server, { width: 390, height: 780 });
    await signIn(page);
    await send(page, "first question");
    await waitStatus(page, "done");
    await send(page, "second question");
    await waitStatus(page, "done");
    const req = server.state.chatRequests.at(-1);
    assert.equal(req.conversation_id, undefined);
    assert.equal(req.rag, undefined);
    assert.deepEqual(
      req.messages.map((m) => m.role),
      ["user", "assistant", "user"],
    );
    assert.equal(await page.getByRole("button", { name: "Documents" }).count(), 0);
    await page.screenshot({ path: `${outDir}/mobile.png` });
    await page.getByRole("button", { name: "Open conversations" }).click();
    await page.getByText("This server keeps no conversation history").waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key").waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem("nova.auth")), null);
    assert.deepEqual(errors, []);
    await context.close();
  });
});
