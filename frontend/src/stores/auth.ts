/**
 * Who the user is. Either an API key or a JWT session; both travel as a Bearer token, so the
 * API client needs only `token`. Persisted in localStorage so a reload stays signed in.
 */
import { createStore, type StoreApi } from "zustand/vanilla";
import { ApiError } from "../lib/api";
import type { LoginResult, ModelInfo } from "../lib/types";

export type Credential =
  | { kind: "api_key"; token: string }
  | { kind: "jwt"; token: string; refreshToken?: string; username: string };

export type KeyValueStorage = Pick<Storage, "getItem" | "setItem" | "removeItem">;

export interface AuthApi {
  listModels(token?: string): Promise<ModelInfo[]>;
  login(username: string, password: string): Promise<LoginResult>;
  refresh(refreshToken: string): Promise<LoginResult>;
  logout(refreshToken: string, accessToken: string): Promise<void>;
}

export interface AuthState {
  credential: Credential | null;
  pending: boolean;
  error: ApiError | null;
  signInWithKey(key: string): Promise<boolean>;
  signInWithPassword(username: string, password: string): Promise<boolean>;
  /** The API client calls this on a 401: refresh a JWT session, else sign out. */
  handleUnauthorized(): Promise<boolean>;
  /** The user's sign-out: revokes a JWT session on the server (best effort), then forgets it. */
  logout(): Promise<void>;
  signOut(reason?: ApiError): void;
}

export const AUTH_STORAGE_KEY = "nova.auth";

function load(storage: KeyValueStorage): Credential | null {
  try {
    const raw = storage.getItem(AUTH_STORAGE_KEY);
    if (!raw) return null;
    const c = JSON.parse(raw) as Credential;
    if ((c.kind === "api_key" || c.kind === "jwt") && typeof c.token === "string" && c.token) return c;
  } catch {
    /* corrupt entry: treat as signed out */
  }
  return null;
}

function toError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError({ status: 0, message: String(err) });
}

/** Expired access tokens are renewed lazily: the first 401 triggers one refresh and a retry. */
export function createAuthStore(deps: { storage: KeyValueStorage; api: AuthApi }): StoreApi<AuthState> {
  const { storage, api } = deps;
  let refreshing: Promise<boolean> | null = null;

  const jwtFrom = (username: string, r: LoginResult, previousRefresh?: string): Credential => ({
    kind: "jwt",
    token: r.access_token,
    refreshToken: r.refresh_token ?? previousRefresh,
    username,
  });

  return createStore<AuthState>()((set, get) => {
    const persist = (credential: Credential | null) => {
      if (credential) storage.setItem(AUTH_STORAGE_KEY, JSON.stringify(credential));
      else storage.removeItem(AUTH_STORAGE_KEY);
      set({ credential });
    };

    return {
      credential: load(storage),
      pending: false,
      error: null,

      async signInWithKey(key) {
        const token = key.trim();
        if (!token) {
          set({ error: new ApiError({ status: 400, message: "Enter an API key" }) });
          return false;
        }
        set({ pending: true, error: null });
        try {
          await api.listModels(token); // proves the key works before we keep it
          persist({ kind: "api_key", token });
          set({ pending: false });
          return true;
        } catch (err) {
          set({ pending: false, error: toError(err) });
          return false;
        }
      },

      async signInWithPassword(username, password) {
        set({ pending: true, error: null });
        try {
          persist(jwtFrom(username, await api.login(username, password)));
          set({ pending: false });
          return true;
        } catch (err) {
          set({ pending: false, error: toError(err) });
          return false;
        }
      },

      handleUnauthorized() {
        const c = get().credential;
        if (c?.kind === "jwt" && c.refreshToken) {
          // Concurrent 401s share one refresh so a rotating refresh token is used only once.
          refreshing ??= api
            .refresh(c.refreshToken)
            .then((r) => {
              persist(jwtFrom(c.username, r, c.refreshToken));
              return true;
            })
            .catch((err: unknown) => {
              get().signOut(toError(err));
              return false;
            })
            .finally(() => {
              refreshing = null;
            });
          return refreshing;
        }
        if (c) {
          get().signOut(
            new ApiError({
              status: 401,
              type: "authentication_error",
              message:
                c.kind === "api_key"
                  ? "The API key was rejected; sign in again."
                  : "Session expired; sign in again.",
            }),
          );
        }
        return Promise.resolve(false);
      },

      async logout() {
        const c = get().credential;
        get().signOut();
        if (c?.kind === "jwt" && c.refreshToken) {
          // Already signed out locally; a failed revoke only leaves a token that expires anyway.
          await api.logout(c.refreshToken, c.token).catch(() => undefined);
        }
      },

      signOut(reason) {
        persist(null);
        set({ error: reason ?? null, pending: false });
      },
    };
  });
}
