/**
 * The chat session: models, conversations, the message list and the one in-flight stream.
 * Optional server features (conversations, RAG collections) are detected at init: a 404 on
 * their list endpoint switches them off and the UI falls back to stateless chat.
 */
import { createStore, type StoreApi } from "zustand/vanilla";
import { ApiError, isAbort, isUnsupported, type NovaApi } from "../lib/api";
import type {
  Citation,
  Collection,
  ConversationDetail,
  ConversationSummary,
  ModelInfo,
  Role,
  Usage,
  WireMessage,
} from "../lib/types";
import type { KeyValueStorage } from "./auth";

export type MessageStatus = "done" | "streaming" | "stopped" | "error";

export interface UiMessage {
  id: string;
  role: Role;
  content: string;
  status: MessageStatus;
  usage?: Usage;
  citations?: Citation[];
  error?: ApiError;
  ttftMs?: number;
  durationMs?: number;
}

export interface Features {
  conversations: boolean;
  collections: boolean;
}

export type ChatApi = Pick<
  NovaApi,
  | "listModels"
  | "streamChat"
  | "listConversations"
  | "createConversation"
  | "getConversation"
  | "renameConversation"
  | "deleteConversation"
  | "listCollections"
>;

export interface ChatState {
  ready: boolean;
  models: ModelInfo[];
  model: string;
  features: Features;
  conversations: ConversationSummary[];
  nextCursor: string | null;
  activeId: string | null;
  loadingConversation: boolean;
  messages: UiMessage[];
  streaming: boolean;
  collections: Collection[];
  selectedCollections: string[];
  /** An error not tied to one message (loading lists, renaming...). */
  notice: ApiError | null;

  init(): Promise<void>;
  send(text: string): Promise<void>;
  stop(): void;
  newChat(): void;
  selectConversation(id: string): Promise<void>;
  renameConversation(id: string, title: string): Promise<void>;
  deleteConversation(id: string): Promise<void>;
  loadMoreConversations(): Promise<void>;
  setModel(id: string): void;
  toggleCollection(id: string): void;
  dismissNotice(): void;
  reset(): void;
}

export const MODEL_KEY = "nova.model";
export const COLLECTIONS_KEY = "nova.collections";
export const PAGE_SIZE = 30;
const TITLE_LENGTH = 60;

let seq = 0;
const newId = () => `m${Date.now().toString(36)}-${(seq++).toString(36)}`;

function toError(err: unknown): ApiError {
  return err instanceof ApiError
    ? err
    : new ApiError({ status: 0, message: (err as Error)?.message ?? String(err) });
}

export function titleFrom(text: string): string {
  const line = text.trim().split("\n")[0].replace(/\s+/g, " ").trim();
  return line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line;
}

/** Stateless history sent to the API: finished turns only, never failed or empty ones. */
export function historyFor(messages: UiMessage[]): WireMessage[] {
  return messages
    .filter(
      (m) => m.content.trim() !== "" && (m.role === "user" || m.status === "done" || m.status === "stopped"),
    )
    .map((m) => ({ role: m.role, content: m.content }));
}

/** A message as the server stored it: partial answers show as stopped, failed ones with their error. */
export function storedMessage(m: ConversationDetail["messages"][number]): UiMessage {
  const base = { id: newId(), role: m.role, content: m.content };
  if (m.status === "partial") return { ...base, status: "stopped" };
  if (m.status === "error") {
    const why = m.error ? `: ${m.error}` : "";
    return {
      ...base,
      status: "error",
      error: new ApiError({ status: 0, type: "stored_error", message: `This answer failed${why}` }),
    };
  }
  return { ...base, status: "done" };
}

function readList(storage: KeyValueStorage, key: string): string[] {
  try {
    const v: unknown = JSON.parse(storage.getItem(key) ?? "[]");
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

export function createChatStore(deps: {
  api: ChatApi;
  storage: KeyValueStorage;
  now?: () => number;
}): StoreApi<ChatState> {
  const { api, storage } = deps;
  const now = deps.now ?? (() => performance.now());
  let controller: AbortController | null = null;
  let generation = 0; // bumped by reset(): late answers from a signed-out session are dropped

  const initial = () => ({
    ready: false,
    models: [] as ModelInfo[],
    model: storage.getItem(MODEL_KEY) ?? "",
    features: { conversations: false, collections: false },
    conversations: [] as ConversationSummary[],
    nextCursor: null as string | null,
    activeId: null as string | null,
    loadingConversation: false,
    messages: [] as UiMessage[],
    streaming: false,
    collections: [] as Collection[],
    selectedCollections: readList(storage, COLLECTIONS_KEY),
    notice: null as ApiError | null,
  });

  return createStore<ChatState>()((set, get) => {
    const patchMessage = (id: string, patch: (m: UiMessage) => Partial<UiMessage>) =>
      set((s) => ({ messages: s.messages.map((m) => (m.id === id ? { ...m, ...patch(m) } : m)) }));

    const abortStream = () => {
      controller?.abort();
      controller = null;
    };

    return {
      ...initial(),

      async init() {
        const gen = generation;
        const [models, convs, cols] = await Promise.allSettled([
          api.listModels(),
          api.listConversations(PAGE_SIZE),
          api.listCollections(),
        ]);
        if (gen !== generation) return;
        const features: Features = { conversations: false, collections: false };
        let notice: ApiError | null = null;
        const note = (err: unknown) => {
          if (!isUnsupported(err)) notice ??= toError(err);
        };

        const patch: Partial<ChatState> = {};
        if (models.status === "fulfilled") {
          patch.models = models.value;
          const stored = get().model;
          patch.model = models.value.some((m) => m.id === stored) ? stored : (models.value[0]?.id ?? "");
        } else note(models.reason);
        if (convs.status === "fulfilled") {
          features.conversations = true;
          patch.conversations = convs.value.data;
          patch.nextCursor = convs.value.next_cursor;
        } else note(convs.reason);
        if (cols.status === "fulfilled") {
          features.collections = true;
          patch.collections = cols.value;
          const known = new Set(cols.value.map((c) => c.id));
          patch.selectedCollections = get().selectedCollections.filter((id) => known.has(id));
        } else {
          note(cols.reason);
          patch.selectedCollections = [];
        }
        set({ ...patch, features, notice, ready: true });
      },

      async send(text) {
        const content = text.trim();
        const s = get();
        if (!content || s.streaming || !s.model) return;

        const user: UiMessage = { id: newId(), role: "user", content, status: "done" };
        const reply: UiMessage = { id: newId(), role: "assistant", content: "", status: "streaming" };
        const history = historyFor(s.messages);
        set({ messages: [...s.messages, user, reply], streaming: true });
        const ctrl = new AbortController();
        controller = ctrl;
        const started = now();

        try {
          let conversationId = s.activeId;
          if (s.features.conversations && !conversationId) {
            try {
              const conv = await api.createConversation(titleFrom(content), s.model);
              conversationId = conv.id;
              set((st) => ({ activeId: conv.id, conversations: [conv, ...st.conversations] }));
            } catch (err) {
              if (!isUnsupported(err)) throw err;
              set({ features: { ...get().features, conversations: false } });
            }
          }
          const useRag = get().features.collections && s.selectedCollections.length > 0;
          const stream = api.streamChat(
            {
              model: s.model,
              // With a conversation the server holds the history; otherwise we send it all.
              messages: conversationId
                ? [{ role: "user", content }]
                : [...history, { role: "user", content }],
              ...(conversationId ? { conversation_id: conversationId } : {}),
              ...(useRag ? { rag: { collections: s.selectedCollections } } : {}),
            },
            ctrl.signal,
          );
          let ttft: number | undefined;
          for await (const chunk of stream) {
            const delta = chunk.choices?.[0]?.delta?.content ?? "";
            const citations = chunk.nova?.citations;
            const usage = chunk.usage ?? undefined;
            if (delta && ttft === undefined) ttft = now() - started;
            if (delta || citations || usage) {
              patchMessage(reply.id, (m) => ({
                content: m.content + delta,
                ...(citations ? { citations } : {}),
                ...(usage ? { usage } : {}),
                ...(ttft !== undefined ? { ttftMs: ttft } : {}),
              }));
            }
          }
          patchMessage(reply.id, () => ({ status: "done" }));
        } catch (err) {
          if (isAbort(err) || ctrl.signal.aborted) patchMessage(reply.id, () => ({ status: "stopped" }));
          else patchMessage(reply.id, () => ({ status: "error", error: toError(err) }));
        } finally {
          patchMessage(reply.id, () => ({ durationMs: now() - started }));
          // A newer send (after New chat / switching) owns the streaming flag now.
          const superseded = controller !== null && controller !== ctrl;
          if (controller === ctrl) controller = null;
          if (!superseded) {
            set((st) => {
              const id = st.activeId;
              const idx = st.conversations.findIndex((c) => c.id === id);
              if (idx <= 0) return { streaming: false };
              const moved = { ...st.conversations[idx], updated_at: new Date().toISOString() };
              return {
                streaming: false,
                conversations: [moved, ...st.conversations.filter((c) => c.id !== id)],
              };
            });
          }
        }
      },

      stop() {
        abortStream();
      },

      newChat() {
        abortStream();
        set({ activeId: null, messages: [], streaming: false, loadingConversation: false });
      },

      async selectConversation(id) {
        if (get().activeId === id && !get().loadingConversation) return;
        abortStream();
        set({ activeId: id, messages: [], streaming: false, loadingConversation: true });
        try {
          const conv = await api.getConversation(id);
          if (get().activeId !== id) return; // the user moved on meanwhile
          set({
            loadingConversation: false,
            messages: conv.messages
              .filter((m) => m.role === "user" || m.role === "assistant")
              .map(storedMessage),
          });
        } catch (err) {
          if (get().activeId !== id) return;
          set({ loadingConversation: false, notice: toError(err) });
          if (err instanceof ApiError && err.status === 404) {
            set((st) => ({ activeId: null, conversations: st.conversations.filter((c) => c.id !== id) }));
          }
        }
      },

      async renameConversation(id, title) {
        const clean = title.trim();
        if (!clean) return;
        try {
          const conv = await api.renameConversation(id, clean);
          set((st) => ({
            conversations: st.conversations.map((c) =>
              c.id === id ? { ...c, title: conv?.title ?? clean } : c,
            ),
          }));
        } catch (err) {
          set({ notice: toError(err) });
        }
      },

      async deleteConversation(id) {
        try {
          await api.deleteConversation(id);
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 404)) {
            set({ notice: toError(err) });
            return;
          }
        }
        if (get().activeId === id) get().newChat();
        set((st) => ({ conversations: st.conversations.filter((c) => c.id !== id) }));
      },

      async loadMoreConversations() {
        const cursor = get().nextCursor;
        if (!cursor) return;
        try {
          const page = await api.listConversations(PAGE_SIZE, cursor);
          set((st) => {
            const seen = new Set(st.conversations.map((c) => c.id));
            return {
              conversations: [...st.conversations, ...page.data.filter((c) => !seen.has(c.id))],
              nextCursor: page.next_cursor,
            };
          });
        } catch (err) {
          set({ notice: toError(err) });
        }
      },

      setModel(id) {
        storage.setItem(MODEL_KEY, id);
        set({ model: id });
      },

      toggleCollection(id) {
        const cur = get().selectedCollections;
        const next = cur.includes(id) ? cur.filter((c) => c !== id) : [...cur, id];
        storage.setItem(COLLECTIONS_KEY, JSON.stringify(next));
        set({ selectedCollections: next });
      },

      dismissNotice() {
        set({ notice: null });
      },

      reset() {
        generation++;
        abortStream();
        set(initial());
      },
    };
  });
}
