import { describe, expect, it, vi } from "vitest";
import { ApiError } from "../lib/api";
import type { ChatChunk, ChatRequest, ConversationSummary } from "../lib/types";
import {
  COLLECTIONS_KEY,
  createChatStore,
  historyFor,
  MODEL_KEY,
  storedMessage,
  titleFrom,
  type ChatApi,
  type UiMessage,
} from "./chat";
import { deferred, MemoryStorage } from "./testing";

const notFound = () => new ApiError({ status: 404, message: "Not Found" });
const delta = (content: string): ChatChunk => ({ choices: [{ index: 0, delta: { content } }] });
const conv = (id: string, title = id): ConversationSummary => ({
  id,
  title,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
});

/** A fake API; streamChat replays `chunks` and records each request and its abort signal. */
function fakeApi(overrides: Partial<ChatApi> = {}, chunks: ChatChunk[] = [delta("Hi"), delta(" there")]) {
  const requests: { req: ChatRequest; signal?: AbortSignal }[] = [];
  const api: ChatApi = {
    listModels: vi.fn(async () => [{ id: "small" }, { id: "large" }]),
    listConversations: vi.fn(async () => Promise.reject(notFound())),
    listCollections: vi.fn(async () => Promise.reject(notFound())),
    createConversation: vi.fn(async (title: string) => ({ ...conv("new"), title })),
    getConversation: vi.fn(async (id: string) => ({ id, title: id, messages: [] })),
    renameConversation: vi.fn(async (id: string, title: string) => ({ ...conv(id), title })),
    deleteConversation: vi.fn(async () => undefined),
    streamChat: async function* (req: ChatRequest, signal?: AbortSignal) {
      requests.push({ req, signal });
      for (const c of chunks) yield c;
    },
    ...overrides,
  };
  return { api, requests };
}

async function ready(api: ChatApi, storage = new MemoryStorage()) {
  let t = 0;
  const store = createChatStore({ api, storage, now: () => (t += 100) });
  await store.getState().init();
  return { store, storage };
}

const last = (ms: UiMessage[]) => ms[ms.length - 1];

describe("chat store: init and feature detection", () => {
  it("turns optional features off on 404 without showing an error", async () => {
    const { store } = await ready(fakeApi().api);
    const s = store.getState();
    expect(s.ready).toBe(true);
    expect(s.features).toEqual({ conversations: false, collections: false });
    expect(s.notice).toBeNull();
    expect(s.model).toBe("small");
  });

  it("enables conversations and collections when their endpoints answer", async () => {
    const { api } = fakeApi({
      listConversations: vi.fn(async () => ({ data: [conv("a"), conv("b")], next_cursor: "c2" })),
      listCollections: vi.fn(async () => [{ id: "docs", name: "Docs" }]),
    });
    const storage = new MemoryStorage();
    storage.setItem(COLLECTIONS_KEY, JSON.stringify(["docs", "gone"]));
    storage.setItem(MODEL_KEY, "large");
    const { store } = await ready(api, storage);
    const s = store.getState();
    expect(s.features).toEqual({ conversations: true, collections: true });
    expect(s.conversations.map((c) => c.id)).toEqual(["a", "b"]);
    expect(s.nextCursor).toBe("c2");
    expect(s.selectedCollections).toEqual(["docs"]); // unknown ids dropped
    expect(s.model).toBe("large"); // remembered model kept when still offered
  });

  it("shows a notice when a list fails for another reason than 404", async () => {
    const { api } = fakeApi({
      listConversations: vi.fn(async () => Promise.reject(new ApiError({ status: 503, message: "db down" }))),
    });
    const { store } = await ready(api);
    expect(store.getState().notice?.message).toBe("db down");
    expect(store.getState().features.conversations).toBe(false);
  });
});

describe("chat store: sending", () => {
  it("streams a stateless answer with usage, citations and timings, sending the whole history", async () => {
    const citations = [{ document: "guide.md", chunk: 2, score: 0.8, snippet: "..." }];
    const { api, requests } = fakeApi({}, [
      { ...delta("Hel"), nova: { citations } },
      delta("lo"),
      { choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } },
    ]);
    const { store } = await ready(api);
    await store.getState().send("  first  ");
    await store.getState().send("second");
    const s = store.getState();
    expect(s.streaming).toBe(false);
    expect(s.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ["user", "first", "done"],
      ["assistant", "Hello", "done"],
      ["user", "second", "done"],
      ["assistant", "Hello", "done"],
    ]);
    const reply = last(s.messages);
    expect(reply.usage).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
    expect(reply.citations).toEqual(citations);
    expect(reply.ttftMs).toBeGreaterThan(0);
    expect(reply.durationMs).toBeGreaterThanOrEqual(reply.ttftMs!);
    expect(requests[1].req).toEqual({
      model: "small",
      messages: [
        { role: "user", content: "first" },
        { role: "assistant", content: "Hello" },
        { role: "user", content: "second" },
      ],
    });
  });

  it("creates a server conversation on the first message and then sends only the new turn", async () => {
    const { api, requests } = fakeApi({
      listConversations: vi.fn(async () => ({ data: [conv("old")], next_cursor: null })),
    });
    const { store } = await ready(api);
    await store.getState().send("Explain SSE please\nwith details");
    await store.getState().send("more");
    expect(api.createConversation).toHaveBeenCalledTimes(1);
    expect(api.createConversation).toHaveBeenCalledWith("Explain SSE please", "small");
    expect(store.getState().activeId).toBe("new");
    expect(store.getState().conversations.map((c) => c.id)).toEqual(["new", "old"]);
    expect(requests.map((r) => r.req)).toEqual([
      {
        model: "small",
        messages: [{ role: "user", content: "Explain SSE please\nwith details" }],
        conversation_id: "new",
      },
      { model: "small", messages: [{ role: "user", content: "more" }], conversation_id: "new" },
    ]);
  });

  it("falls back to stateless chat when creating a conversation answers 404", async () => {
    const { api, requests } = fakeApi({
      listConversations: vi.fn(async () => ({ data: [], next_cursor: null })),
      createConversation: vi.fn(async () => Promise.reject(notFound())),
    });
    const { store } = await ready(api);
    await store.getState().send("hi");
    expect(store.getState().features.conversations).toBe(false);
    expect(requests[0].req.conversation_id).toBeUndefined();
    expect(last(store.getState().messages).status).toBe("done");
  });

  it("adds rag collections only when some are selected", async () => {
    const { api, requests } = fakeApi({
      listCollections: vi.fn(async () => [{ id: "docs" }, { id: "wiki" }]),
    });
    const { store } = await ready(api);
    await store.getState().send("no rag");
    store.getState().toggleCollection("wiki");
    await store.getState().send("with rag");
    expect(requests[0].req.rag).toBeUndefined();
    expect(requests[1].req.rag).toEqual({ collections: ["wiki"] });
  });

  it("Stop aborts the request and keeps the partial answer as stopped", async () => {
    const gate = deferred();
    const { api, requests } = fakeApi({
      streamChat: async function* (req: ChatRequest, signal?: AbortSignal) {
        requests.push({ req, signal });
        yield delta("partial");
        await new Promise<void>((_, reject) =>
          signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
        );
        gate.resolve();
      },
    });
    const { store } = await ready(api);
    const sending = store.getState().send("long story");
    await vi.waitFor(() => expect(last(store.getState().messages).content).toBe("partial"));
    expect(store.getState().streaming).toBe(true);
    store.getState().stop();
    await sending;
    expect(requests[0].signal?.aborted).toBe(true);
    const reply = last(store.getState().messages);
    expect(reply).toMatchObject({ content: "partial", status: "stopped" });
    expect(store.getState().streaming).toBe(false);
  });

  it("shows an API error on the reply, keeping the user's message and any partial text", async () => {
    const err = new ApiError({ status: 502, message: "upstream died", type: "upstream_error" });
    const { api } = fakeApi({
      streamChat: async function* () {
        yield delta("half");
        throw err;
      },
    });
    const { store } = await ready(api);
    await store.getState().send("question");
    const [user, reply] = store.getState().messages;
    expect(user).toMatchObject({ role: "user", content: "question" });
    expect(reply).toMatchObject({ content: "half", status: "error", error: err });
    expect(store.getState().streaming).toBe(false);
  });

  it("does not send failed replies back as history", () => {
    const ms: UiMessage[] = [
      { id: "1", role: "user", content: "q1", status: "done" },
      { id: "2", role: "assistant", content: "", status: "error" },
      { id: "3", role: "user", content: "q2", status: "done" },
      { id: "4", role: "assistant", content: "partial", status: "stopped" },
      { id: "5", role: "assistant", content: "broken", status: "error" },
    ];
    expect(historyFor(ms)).toEqual([
      { role: "user", content: "q1" },
      { role: "user", content: "q2" },
      { role: "assistant", content: "partial" },
    ]);
  });

  it("ignores empty input and sends while a stream runs", async () => {
    const gate = deferred();
    const { api, requests } = fakeApi({
      streamChat: async function* (req: ChatRequest) {
        requests.push({ req });
        await gate.promise;
        yield delta("ok");
      },
    });
    const { store } = await ready(api);
    await store.getState().send("   ");
    const first = store.getState().send("one");
    await store.getState().send("two");
    gate.resolve();
    await first;
    expect(requests).toHaveLength(1);
    expect(store.getState().messages).toHaveLength(2);
  });
});

describe("chat store: conversations", () => {
  function withConversations(extra: Partial<ChatApi> = {}) {
    return fakeApi({
      listConversations: vi.fn(async (_limit?: number, cursor?: string | null) =>
        cursor === "p2"
          ? { data: [conv("b"), conv("c")], next_cursor: null }
          : { data: [conv("a"), conv("b")], next_cursor: "p2" },
      ),
      getConversation: vi.fn(async (id: string) => ({
        id,
        title: id,
        messages: [
          { role: "system" as const, content: "be nice" },
          { role: "user" as const, content: "hello" },
          { role: "assistant" as const, content: "hi!" },
        ],
      })),
      ...extra,
    }).api;
  }

  it("loads a conversation's messages, hiding the system prompt", async () => {
    const { store } = await ready(withConversations());
    await store.getState().selectConversation("a");
    const s = store.getState();
    expect(s.activeId).toBe("a");
    expect(s.loadingConversation).toBe(false);
    expect(s.messages.map((m) => [m.role, m.content])).toEqual([
      ["user", "hello"],
      ["assistant", "hi!"],
    ]);
  });

  it("drops a conversation that no longer exists and says so", async () => {
    const { store } = await ready(
      withConversations({ getConversation: vi.fn(async () => Promise.reject(notFound())) }),
    );
    await store.getState().selectConversation("a");
    expect(store.getState().activeId).toBeNull();
    expect(store.getState().conversations.map((c) => c.id)).toEqual(["b"]);
    expect(store.getState().notice?.status).toBe(404);
  });

  it("pages with the cursor without duplicates", async () => {
    const api = withConversations();
    const { store } = await ready(api);
    await store.getState().loadMoreConversations();
    expect(api.listConversations).toHaveBeenLastCalledWith(30, "p2");
    expect(store.getState().conversations.map((c) => c.id)).toEqual(["a", "b", "c"]);
    expect(store.getState().nextCursor).toBeNull();
  });

  it("renames and deletes, resetting the view when the open conversation is deleted", async () => {
    const api = withConversations();
    const { store } = await ready(api);
    await store.getState().renameConversation("b", "  Better name ");
    expect(api.renameConversation).toHaveBeenCalledWith("b", "Better name");
    expect(store.getState().conversations.find((c) => c.id === "b")?.title).toBe("Better name");
    await store.getState().selectConversation("a");
    await store.getState().deleteConversation("a");
    expect(store.getState().activeId).toBeNull();
    expect(store.getState().messages).toEqual([]);
    expect(store.getState().conversations.map((c) => c.id)).toEqual(["b"]);
  });

  it("keeps the conversation when delete fails", async () => {
    const api = withConversations({
      deleteConversation: vi.fn(async () => Promise.reject(new ApiError({ status: 500, message: "boom" }))),
    });
    const { store } = await ready(api);
    await store.getState().deleteConversation("a");
    expect(store.getState().conversations.map((c) => c.id)).toEqual(["a", "b"]);
    expect(store.getState().notice?.message).toBe("boom");
  });

  it("drops init results that arrive after a reset (signed out meanwhile)", async () => {
    const gate = deferred<{ id: string }[]>();
    const { api } = fakeApi({ listModels: vi.fn(() => gate.promise) });
    const store = createChatStore({ api, storage: new MemoryStorage() });
    const init = store.getState().init();
    store.getState().reset();
    gate.resolve([{ id: "late" }]);
    await init;
    expect(store.getState()).toMatchObject({ ready: false, models: [] });
  });

  it("reset clears everything after sign-out", async () => {
    const { store } = await ready(withConversations());
    await store.getState().selectConversation("a");
    store.getState().reset();
    expect(store.getState()).toMatchObject({ ready: false, conversations: [], messages: [], activeId: null });
  });
});

describe("storedMessage", () => {
  it("maps the server's message status to what the UI shows", () => {
    expect(storedMessage({ role: "assistant", content: "ok", status: "complete" }).status).toBe("done");
    expect(storedMessage({ role: "user", content: "q" }).status).toBe("done");
    expect(
      storedMessage({ role: "assistant", content: "half", status: "partial", error: "client_disconnected" }),
    ).toMatchObject({
      content: "half",
      status: "stopped",
    });
    const failed = storedMessage({ role: "assistant", content: "", status: "error", error: "http_502" });
    expect(failed.status).toBe("error");
    expect(failed.error?.message).toBe("This answer failed: http_502");
  });
});

describe("titleFrom", () => {
  it("uses the first line, collapsed and shortened", () => {
    expect(titleFrom("  hello   world \nsecond")).toBe("hello world");
    expect(titleFrom("x".repeat(100))).toHaveLength(60);
  });
});
