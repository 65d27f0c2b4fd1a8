/** Wiring: one API client and the two stores, shared by the whole page. */
import { NovaApi } from "./lib/api";
import { createAuthStore } from "./stores/auth";
import { createChatStore } from "./stores/chat";

// Declared before use so the API client can read the current credential lazily.
const auth: { store?: ReturnType<typeof createAuthStore> } = {};

export const api = new NovaApi({
  getToken: () => auth.store?.getState().credential?.token ?? null,
  onUnauthorized: () => auth.store?.getState().handleUnauthorized() ?? Promise.resolve(false),
});

export const authStore = createAuthStore({ storage: window.localStorage, api });
auth.store = authStore;

export const chatStore = createChatStore({ api, storage: window.localStorage });

// Signing out (also when a key is revoked mid-session) drops everything the chat held.
authStore.subscribe((s, prev) => {
  if (prev.credential && !s.credential) chatStore.getState().reset();
});
