import { describe, expect, it, vi } from "vitest";
import { ApiError } from "../lib/api";
import { AUTH_STORAGE_KEY, createAuthStore, type AuthApi } from "./auth";
import { deferred, MemoryStorage } from "./testing";

const unauthorized = () =>
  new ApiError({ status: 401, message: "Invalid API key", type: "authentication_error" });

function setup(api: Partial<AuthApi> = {}, storage = new MemoryStorage()) {
  const full: AuthApi = {
    listModels: vi.fn(async () => [{ id: "m" }]),
    login: vi.fn(async () => ({ access_token: "jwt-1", refresh_token: "r-1", expires_in: 900 })),
    refresh: vi.fn(async () => ({ access_token: "jwt-2", refresh_token: "r-2", expires_in: 900 })),
    logout: vi.fn(async () => undefined),
    ...api,
  };
  const store = createAuthStore({ storage, api: full });
  return { store, api: full, storage };
}

describe("auth store", () => {
  it("verifies an API key before keeping it, then persists it", async () => {
    const { store, api, storage } = setup();
    expect(await store.getState().signInWithKey("  sk-abc  ")).toBe(true);
    expect(api.listModels).toHaveBeenCalledWith("sk-abc");
    expect(store.getState().credential).toEqual({ kind: "api_key", token: "sk-abc" });
    expect(JSON.parse(storage.getItem(AUTH_STORAGE_KEY)!)).toEqual({ kind: "api_key", token: "sk-abc" });
  });

  it("rejects a bad key with the server's error and stores nothing", async () => {
    const { store, storage } = setup({ listModels: vi.fn(async () => Promise.reject(unauthorized())) });
    expect(await store.getState().signInWithKey("wrong")).toBe(false);
    expect(store.getState().credential).toBeNull();
    expect(store.getState().error?.message).toBe("Invalid API key");
    expect(store.getState().pending).toBe(false);
    expect(storage.getItem(AUTH_STORAGE_KEY)).toBeNull();
  });

  it("refuses an empty key without calling the server", async () => {
    const { store, api } = setup();
    expect(await store.getState().signInWithKey("   ")).toBe(false);
    expect(api.listModels).not.toHaveBeenCalled();
    expect(store.getState().error?.status).toBe(400);
  });

  it("restores a stored credential and ignores corrupt entries", () => {
    const ok = new MemoryStorage();
    ok.setItem(AUTH_STORAGE_KEY, JSON.stringify({ kind: "api_key", token: "sk-x" }));
    expect(setup({}, ok).store.getState().credential?.token).toBe("sk-x");
    const bad = new MemoryStorage();
    bad.setItem(AUTH_STORAGE_KEY, "{not json");
    expect(setup({}, bad).store.getState().credential).toBeNull();
    const wrong = new MemoryStorage();
    wrong.setItem(AUTH_STORAGE_KEY, JSON.stringify({ kind: "cookie", token: "x" }));
    expect(setup({}, wrong).store.getState().credential).toBeNull();
  });

  it("signs out with a message when an API key stops working mid-session", async () => {
    const { store, storage } = setup();
    await store.getState().signInWithKey("sk-abc");
    expect(await store.getState().handleUnauthorized()).toBe(false);
    expect(store.getState().credential).toBeNull();
    expect(store.getState().error?.status).toBe(401);
    expect(storage.getItem(AUTH_STORAGE_KEY)).toBeNull();
  });

  it("holds a JWT session and refreshes it once for concurrent 401s", async () => {
    const gate = deferred<{ access_token: string; refresh_token: string; expires_in: number }>();
    const refresh = vi.fn(() => gate.promise);
    const { store } = setup({ refresh });
    expect(await store.getState().signInWithPassword("ada", "pw")).toBe(true);
    expect(store.getState().credential).toEqual({
      kind: "jwt",
      token: "jwt-1",
      refreshToken: "r-1",
      username: "ada",
    });
    const a = store.getState().handleUnauthorized();
    const b = store.getState().handleUnauthorized();
    gate.resolve({ access_token: "jwt-2", refresh_token: "r-2", expires_in: 60 });
    expect(await Promise.all([a, b])).toEqual([true, true]);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(refresh).toHaveBeenCalledWith("r-1");
    expect(store.getState().credential).toMatchObject({
      token: "jwt-2",
      refreshToken: "r-2",
      username: "ada",
    });
  });

  it("signs out when the refresh token is rejected", async () => {
    const { store } = setup({ refresh: vi.fn(async () => Promise.reject(unauthorized())) });
    await store.getState().signInWithPassword("ada", "pw");
    expect(await store.getState().handleUnauthorized()).toBe(false);
    expect(store.getState().credential).toBeNull();
    expect(store.getState().error?.message).toBe("Invalid API key");
  });

  it("reports a failed password login", async () => {
    const { store } = setup({
      login: vi.fn(async () =>
        Promise.reject(new ApiError({ status: 401, message: "Wrong username or password" })),
      ),
    });
    expect(await store.getState().signInWithPassword("ada", "nope")).toBe(false);
    expect(store.getState().error?.message).toBe("Wrong username or password");
  });

  it("logout revokes a JWT session on the server with both tokens", async () => {
    const { store, api, storage } = setup();
    await store.getState().signInWithPassword("ada", "pw");
    await store.getState().logout();
    expect(api.logout).toHaveBeenCalledWith("r-1", "jwt-1");
    expect(store.getState().credential).toBeNull();
    expect(storage.getItem(AUTH_STORAGE_KEY)).toBeNull();
  });

  it("logout signs out locally even when the revoke call fails", async () => {
    const { store } = setup({
      logout: vi.fn(async () => Promise.reject(new ApiError({ status: 0, message: "offline" }))),
    });
    await store.getState().signInWithPassword("ada", "pw");
    await store.getState().logout();
    expect(store.getState().credential).toBeNull();
    expect(store.getState().error).toBeNull();
  });

  it("logout of an API key session calls nothing on the server", async () => {
    const { store, api } = setup();
    await store.getState().signInWithKey("sk-abc");
    await store.getState().logout();
    expect(api.logout).not.toHaveBeenCalled();
    expect(store.getState().credential).toBeNull();
  });
});
