/** React bindings for the vanilla stores (the stores themselves stay testable without React). */
import { useStore } from "zustand";
import { authStore, chatStore } from "./app";
import type { AuthState } from "./stores/auth";
import type { ChatState } from "./stores/chat";

export const useAuth = <T>(select: (s: AuthState) => T): T => useStore(authStore, select);
export const useChat = <T>(select: (s: ChatState) => T): T => useStore(chatStore, select);
