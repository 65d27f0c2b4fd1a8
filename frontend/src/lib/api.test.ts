import { describe, expect, it, vi } from "vitest";
import { ApiError, isUnsupported, NovaApi, parseErrorBody } from "./api";
import type { ChatChunk } from "./types";

type Call = { url: string; init: RequestInit & { headers: Headers } };

function fakeFetch(responder: (call: Call) => Response | Promise<Response>) {
  const calls: Call[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const call = { url: String(input), init: { ...init, headers: new Headers(init?.headers) } };
    calls.push(call);
    return responder(call);
  });
  return { fetch: fn as unknown as typeof fetch, calls };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

function sse(events: string[], headers: Record<string, string> = {}): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const e of events) c.enqueue(enc.encode(`data: ${e}\n\n`));
      c.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream", ...headers } });
}

const chunk = (content: string, extra: Partial<ChatChunk> = {}): string =>
  JSON.stringify({ id: "c1", choices: [{ index: 0, delta: { content }, finish_reason: null }], ...extra });

describe("parseErrorBody", () => {
  it("reads the OpenAI error shape", () => {
    const body = JSON.stringify({
      error: { message: "Rate limit reached", type: "rate_limit_error", code: "rate_limited", param: null },
    });
    expect(parseErrorBody(body, 429)).toEqual({
      message: "Rate limit reached",
      type: "rate_limit_error",
      code: "rate_limited",
      param: null,
    });
  });

  it("reads FastAPI detail strings and validation lists", () => {
    expect(parseErrorBody('{"detail":"Not Found"}', 404).message).toBe("Not Found");
    const v = JSON.stringify({ detail: [{ msg: "field required" }, { msg: "too long" }] });
    expect(parseErrorBody(v, 422).message).toBe("field required; too long");
  });

  it("falls back to short plain text, and to a status message for HTML or empty bodies", () => {
    expect(parseErrorBody("upstream connect error", 503).message).toBe("upstream connect error");
    expect(parseErrorBody("<html><body>Bad gateway</body></html>", 502).message).toBe(
      "Upstream model server error",
    );
    expect(parseErrorBody("", 418).message).toBe("HTTP 418");
  });
});

describe("NovaApi.request", () => {
  it("sends the bearer token from getToken and JSON content type for bodies", async () => {
    const f = fakeFetch(() => json({ id: "c" }));
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "sk-test" });
    await api.createConversation("hello", "smollm2");
    expect(f.calls[0].url).toBe("/v1/conversations");
    expect(f.calls[0].init.headers.get("authorization")).toBe("Bearer sk-test");
    expect(f.calls[0].init.headers.get("content-type")).toBe("application/json");
    expect(JSON.parse(f.calls[0].init.body as string)).toEqual({ title: "hello", model: "smollm2" });
  });

  it("uses an explicit token over the stored one (sign-in check)", async () => {
    const f = fakeFetch(() => json({ data: [{ id: "m" }] }));
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "old" });
    expect(await api.listModels("new-key")).toEqual([{ id: "m" }]);
    expect(f.calls[0].init.headers.get("authorization")).toBe("Bearer new-key");
  });

  it("maps error responses to ApiError with status, type, code, request id and Retry-After", async () => {
    const f = fakeFetch(() =>
      json(
        { error: { message: "Too many requests", type: "rate_limit_error", code: "rpm", param: null } },
        429,
        {
          "x-request-id": "req-42",
          "retry-after": "3",
        },
      ),
    );
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "k" });
    const err = await api.listModels().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({
      status: 429,
      message: "Too many requests",
      type: "rate_limit_error",
      code: "rpm",
      requestId: "req-42",
      retryAfter: 3,
    });
  });

  it("turns network failures into ApiError status 0", async () => {
    const api = new NovaApi({
      fetch: (() => Promise.reject(new TypeError("Failed to fetch"))) as typeof fetch,
      getToken: () => null,
    });
    const err = await api.listModels().catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 0, type: "network_error" });
    expect((err as Error).message).toContain("Failed to fetch");
  });

  it("retries once after onUnauthorized refreshed the credentials", async () => {
    let token = "expired";
    const f = fakeFetch((c) =>
      c.init.headers.get("authorization") === "Bearer fresh"
        ? json({ data: [] })
        : json({ error: { message: "expired", type: "authentication_error" } }, 401),
    );
    const onUnauthorized = vi.fn(async () => {
      token = "fresh";
      return true;
    });
    const api = new NovaApi({ fetch: f.fetch, getToken: () => token, onUnauthorized });
    expect(await api.listModels()).toEqual([]);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    expect(f.calls).toHaveLength(2);
  });

  it("throws the server's 401 when the refresh fails, without looping", async () => {
    const f = fakeFetch(() =>
      json({ error: { message: "Invalid API key", type: "authentication_error" } }, 401),
    );
    const onUnauthorized = vi.fn(async () => false);
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "bad", onUnauthorized });
    await expect(api.listModels()).rejects.toMatchObject({ status: 401, message: "Invalid API key" });
    expect(f.calls).toHaveLength(1);
  });

  it("does not call onUnauthorized for explicit-token requests", async () => {
    const f = fakeFetch(() => json({ error: { message: "no" } }, 401));
    const onUnauthorized = vi.fn(async () => true);
    const api = new NovaApi({ fetch: f.fetch, getToken: () => null, onUnauthorized });
    await expect(api.listModels("typo")).rejects.toMatchObject({ status: 401 });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("isUnsupported recognises missing endpoints only", () => {
    expect(isUnsupported(new ApiError({ status: 404, message: "" }))).toBe(true);
    expect(isUnsupported(new ApiError({ status: 405, message: "" }))).toBe(true);
    expect(isUnsupported(new ApiError({ status: 500, message: "" }))).toBe(false);
    expect(isUnsupported(new Error("x"))).toBe(false);
    // A feature switched off on the server, e.g. RAG without a vector store.
    expect(isUnsupported(new ApiError({ status: 503, message: "", code: "rag_disabled" }))).toBe(true);
    expect(isUnsupported(new ApiError({ status: 503, message: "", code: "upstream_unavailable" }))).toBe(
      false,
    );
    expect(isUnsupported(new ApiError({ status: 503, message: "" }))).toBe(false);
  });

  it("builds conversation URLs with encoded ids and cursor", async () => {
    const f = fakeFetch(() => json({ data: [], next_cursor: null }));
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "k", baseUrl: "http://gw/" });
    await api.listConversations(10, "abc/def");
    await api.getConversation("a b");
    expect(f.calls[0].url).toBe("http://gw/v1/conversations?limit=10&cursor=abc%2Fdef");
    expect(f.calls[1].url).toBe("http://gw/v1/conversations/a%20b");
  });
});

describe("NovaApi.streamChat", () => {
  it("posts stream + include_usage and yields chunks until [DONE]", async () => {
    const f = fakeFetch(() =>
      sse([
        chunk("Hel", { nova: { citations: [{ document: "doc.md", chunk: 0, score: 0.9, snippet: "s" }] } }),
        chunk("lo"),
        JSON.stringify({
          id: "c1",
          choices: [],
          usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
        }),
        "[DONE]",
        chunk("after done is ignored"),
      ]),
    );
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "k" });
    const got: ChatChunk[] = [];
    for await (const c of api.streamChat({
      model: "m",
      messages: [{ role: "user", content: "hi" }],
      conversation_id: "conv1",
      rag: { collections: ["docs"] },
    }))
      got.push(c);
    expect(got.map((c) => c.choices[0]?.delta.content ?? null)).toEqual(["Hel", "lo", null]);
    expect(got[0].nova?.citations?.[0].document).toBe("doc.md");
    expect(got[2].usage?.total_tokens).toBe(5);
    const body = JSON.parse(f.calls[0].init.body as string);
    expect(body).toMatchObject({
      model: "m",
      stream: true,
      stream_options: { include_usage: true },
      conversation_id: "conv1",
      rag: { collections: ["docs"] },
    });
    expect(f.calls[0].init.method).toBe("POST");
  });

  it("throws an ApiError for an error event inside the stream", async () => {
    const f = fakeFetch(() =>
      sse(
        [
          chunk("par"),
          JSON.stringify({ error: { message: "upstream died", type: "upstream_error", code: 502 } }),
        ],
        {
          "x-request-id": "r1",
        },
      ),
    );
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "k" });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const c of api.streamChat({ model: "m", messages: [] }))
        seen.push(c.choices[0].delta.content ?? "");
    })().catch((e: unknown) => e);
    expect(seen).toEqual(["par"]);
    expect(err).toMatchObject({
      message: "upstream died",
      type: "upstream_error",
      code: "502",
      requestId: "r1",
    });
  });

  it("throws the HTTP error before streaming starts", async () => {
    const f = fakeFetch(() =>
      json(
        {
          error: {
            message: "model 'x' does not exist",
            type: "invalid_request_error",
            code: "model_not_found",
          },
        },
        404,
      ),
    );
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "k" });
    const gen = api.streamChat({ model: "x", messages: [] });
    await expect(gen.next()).rejects.toMatchObject({ status: 404, code: "model_not_found" });
  });

  it("propagates aborts as AbortError, not ApiError", async () => {
    const ctrl = new AbortController();
    const f = fakeFetch(
      (c) =>
        new Promise<Response>((_, reject) => {
          c.init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
        }),
    );
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "k" });
    const p = api.streamChat({ model: "m", messages: [] }, ctrl.signal).next();
    ctrl.abort();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
  });
});

describe("NovaApi auth endpoints", () => {
  it("logs in without a bearer and maps a failed login to ApiError", async () => {
    const f = fakeFetch((c) =>
      JSON.parse(c.init.body as string).password === "right"
        ? json({ access_token: "a", refresh_token: "r", expires_in: 900, token_type: "bearer" })
        : json({ error: { message: "Invalid username or password.", type: "authentication_error" } }, 401),
    );
    const onUnauthorized = vi.fn(async () => true);
    const api = new NovaApi({ fetch: f.fetch, getToken: () => "stale", onUnauthorized });
    expect(await api.login("ada", "right")).toMatchObject({ access_token: "a", refresh_token: "r" });
    expect(f.calls[0].url).toBe("/v1/auth/login");
    expect(f.calls[0].init.headers.has("authorization")).toBe(false);
    await expect(api.login("ada", "wrong")).rejects.toMatchObject({
      status: 401,
      message: "Invalid username or password.",
    });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("refreshes with the refresh token and logs out with both tokens", async () => {
    const f = fakeFetch((c) =>
      c.url.endsWith("/logout")
        ? new Response(null, { status: 204 })
        : json({ access_token: "a2", refresh_token: "r2" }),
    );
    const api = new NovaApi({ fetch: f.fetch, getToken: () => null });
    expect((await api.refresh("r1")).access_token).toBe("a2");
    expect(JSON.parse(f.calls[0].init.body as string)).toEqual({ refresh_token: "r1" });
    await api.logout("r2", "a2");
    expect(f.calls[1].url).toBe("/v1/auth/logout");
    expect(f.calls[1].init.headers.get("authorization")).toBe("Bearer a2");
    expect(JSON.parse(f.calls[1].init.body as string)).toEqual({ refresh_token: "r2" });
  });
});
