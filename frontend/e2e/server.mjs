// Tiny static server for dist/ plus a fake Nova /v1 API that streams SSE like the gateway.
// Used by the end-to-end test; `node e2e/server.mjs` also serves it for a manual look (port 4173).
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

export const GOOD_KEY = "sk-nova-e2e-0123456789";
export const USER = { username: "ada", password: "correct horse battery" };
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

const ANSWER = [
  "Server-Sent Events keep one HTTP response open and push `data:` lines.",
  "",
  "Here is a **minimal** parser:",
  "",
  "```ts",
  "for (const line of text.split('\\n')) {",
  "  if (line.startsWith('data: ')) handle(line.slice(6));",
  "}",
  "```",
  "",
  "- works with `fetch`",
  "- supports *aborting*",
].join("\n");

function tokens(text) {
  return text.match(/\s*\S+|\s+/g) ?? [];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, {
    "content-type": "application/json",
    "x-request-id": headers.rid ?? "req-e2e",
    ...headers,
  });
  res.end(JSON.stringify(body));
}

function apiError(res, status, message, type, code, headers = {}) {
  sendJson(res, status, { error: { message, type, code, param: null } }, headers);
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : {};
}

/**
 * @param {{distDir: string, conversations?: boolean, collections?: boolean, tokenDelayMs?: number}} opts
 */
export async function startServer(opts) {
  const state = {
    chatRequests: [],
    disconnects: 0,
    conversations: new Map(),
    seq: 0,
    // Bearer tokens the API accepts: the API key plus access tokens issued by /v1/auth.
    validTokens: new Set([GOOD_KEY]),
    refreshTokens: new Set(),
    refreshes: 0,
    logouts: [],
  };
  const features = { conversations: opts.conversations ?? true, collections: opts.collections ?? true };
  const delay = opts.tokenDelayMs ?? 25;

  async function chat(req, res) {
    const body = await readBody(req);
    state.chatRequests.push(body);
    const last = body.messages?.at(-1)?.content ?? "";
    if (last.includes("trigger rate limit")) {
      return apiError(
        res,
        429,
        "Rate limit reached for requests per minute",
        "rate_limit_error",
        "rate_limited",
        {
          "retry-after": "7",
          rid: "req-429-abc",
        },
      );
    }
    const conv = body.conversation_id ? state.conversations.get(body.conversation_id) : null;
    if (body.conversation_id && !conv)
      return apiError(res, 404, "Conversation not found", "invalid_request_error", "not_found");
    const slow = last.includes("long story");
    const grounded = Boolean(body.rag?.collections?.length);
    const answer = slow
      ? Array.from({ length: 400 }, (_, i) => `word${i}`).join(" ")
      : grounded
        ? ANSWER.replace("lines.", "lines [1][2].")
        : ANSWER;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-request-id": "req-stream",
    });
    let closed = false;
    res.on("close", () => {
      if (!res.writableEnded) {
        closed = true;
        state.disconnects++;
      }
    });
    const base = { id: "chatcmpl-e2e", object: "chat.completion.chunk", created: 0, model: body.model };
    const first = {
      ...base,
      choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
    };
    if (grounded) {
      // The gateway's citation shape (nova/rag/schemas.py Citation).
      const cite = (index, document_id, filename, chunk_index, score, snippet) => ({
        index,
        collection: body.rag.collections[0],
        document_id,
        filename,
        chunk_index,
        score,
        snippet,
      });
      first.nova = {
        citations: [
          cite(1, "doc_a", "handbook.md", 3, 0.912, "SSE streams are plain HTTP responses."),
          cite(2, "doc_b", "faq.md", 0, 0.774, "Abort the fetch to stop generation."),
        ],
      };
    }
    res.write(`data: ${JSON.stringify(first)}\n\n`);
    let produced = "";
    const parts = tokens(answer);
    for (const t of parts) {
      if (closed) break;
      await sleep(slow ? 60 : delay);
      produced += t;
      res.write(
        `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: t }, finish_reason: null }] })}\n\n`,
      );
    }
    if (conv) {
      conv.messages.push({ role: "user", content: last, created_at: new Date().toISOString() });
      conv.messages.push({ role: "assistant", content: produced, created_at: new Date().toISOString() });
      conv.updated_at = new Date().toISOString();
    }
    if (closed) return;
    const usage = {
      prompt_tokens: 12 + last.length,
      completion_tokens: parts.length,
      total_tokens: 12 + last.length + parts.length,
    };
    res.write(
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`,
    );
    res.write(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`);
    res.end("data: [DONE]\n\n");
  }

  async function conversations(req, res, url) {
    const id = decodeURIComponent(url.pathname.slice("/v1/conversations/".length));
    if (url.pathname === "/v1/conversations" && req.method === "GET") {
      const all = [...state.conversations.values()].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
      const data = all.map(({ messages: _m, ...c }) => c);
      return sendJson(res, 200, { data, next_cursor: null });
    }
    if (url.pathname === "/v1/conversations" && req.method === "POST") {
      const { title, model } = await readBody(req);
      const now = new Date(Date.now() + state.seq).toISOString();
      const c = {
        id: `conv_${++state.seq}`,
        title: title || "New chat",
        model: model ?? null,
        created_at: now,
        updated_at: now,
        messages: [],
      };
      state.conversations.set(c.id, c);
      const { messages: _m, ...summary } = c;
      return sendJson(res, 201, summary);
    }
    const c = state.conversations.get(id);
    if (!c) return apiError(res, 404, "Conversation not found", "invalid_request_error", "not_found");
    if (req.method === "GET") return sendJson(res, 200, c);
    if (req.method === "PATCH") {
      c.title = (await readBody(req)).title;
      const { messages: _m, ...summary } = c;
      return sendJson(res, 200, summary);
    }
    if (req.method === "DELETE") {
      state.conversations.delete(id);
      res.writeHead(204).end();
      return;
    }
    return apiError(res, 405, "Method not allowed", "invalid_request_error", null);
  }

  function issue(res) {
    const n = ++state.seq;
    const pair = {
      access_token: `jwt-access-${n}`,
      refresh_token: `rt-${n}`,
      token_type: "bearer",
      expires_in: 900,
    };
    state.validTokens.add(pair.access_token);
    state.refreshTokens.add(pair.refresh_token);
    sendJson(res, 200, pair);
  }

  async function auth(req, res, url) {
    const body = await readBody(req);
    if (url.pathname === "/v1/auth/login") {
      if (body.username === USER.username && body.password === USER.password) return issue(res);
      return apiError(
        res,
        401,
        "Invalid username or password.",
        "authentication_error",
        "invalid_credentials",
      );
    }
    if (!state.refreshTokens.delete(body.refresh_token)) {
      return apiError(res, 401, "Refresh token is invalid.", "authentication_error", "invalid_refresh_token");
    }
    if (url.pathname === "/v1/auth/refresh") {
      state.refreshes++;
      return issue(res);
    }
    state.logouts.push({ refresh: body.refresh_token, access: req.headers.authorization });
    state.validTokens.delete((req.headers.authorization ?? "").slice("Bearer ".length));
    res.writeHead(204).end();
  }

  async function api(req, res, url) {
    if (url.pathname.startsWith("/v1/auth/") && req.method === "POST") return auth(req, res, url);
    const bearer = (req.headers.authorization ?? "").slice("Bearer ".length);
    if (!state.validTokens.has(bearer)) {
      return apiError(res, 401, "Invalid API key", "authentication_error", "invalid_api_key", {
        rid: "req-401",
      });
    }
    if (url.pathname === "/v1/models") {
      return sendJson(res, 200, {
        object: "list",
        data: [
          { id: "smollm2", object: "model" },
          { id: "nano", object: "model" },
        ],
      });
    }
    if (url.pathname === "/v1/chat/completions" && req.method === "POST") return chat(req, res);
    if (features.conversations && url.pathname.startsWith("/v1/conversations"))
      return conversations(req, res, url);
    if (features.collections && url.pathname === "/v1/collections") {
      const col = (id, description, documents) => ({
        id,
        description,
        metadata: {},
        created_at: 0,
        documents,
      });
      return sendJson(res, 200, { data: [col("handbook", "Company handbook", 12), col("faq", "", 3)] });
    }
    return apiError(res, 404, `No route ${url.pathname}`, "invalid_request_error", "not_found");
  }

  async function staticFile(res, pathname) {
    const rel = normalize(decodeURIComponent(pathname)).replace(/^(\.\.[/\\])+/, "");
    let file = join(opts.distDir, rel);
    if (!file.startsWith(opts.distDir)) return res.writeHead(403).end();
    const st = await stat(file).catch(() => null);
    if (!st || st.isDirectory()) file = join(opts.distDir, "index.html");
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const handler = url.pathname.startsWith("/v1/") ? api(req, res, url) : staticFile(res, url.pathname);
    handler.catch((err) => {
      if (!res.headersSent) apiError(res, 500, String(err), "server_error", null);
      else res.destroy();
    });
  });
  await new Promise((r) => server.listen(opts.port ?? 0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const distDir = fileURLToPath(new URL("../dist", import.meta.url));
  const s = await startServer({ distDir, port: Number(process.env.PORT ?? 4173) });
  console.log(`serving ${distDir} with a fake API at ${s.url} (API key: ${GOOD_KEY})`);
}
