import { useState, type FormEvent } from "react";
import { authStore } from "../app";
import { useAuth } from "../hooks";
import { ErrorNote } from "./ErrorNote";

type Method = "key" | "password";

const inputClass =
  "w-full rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 text-sm text-slate-100 placeholder-slate-600 outline-none focus:border-indigo-500";

export function SignIn() {
  const pending = useAuth((s) => s.pending);
  const error = useAuth((s) => s.error);
  const [method, setMethod] = useState<Method>("key");
  const [key, setKey] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");

  const ready = method === "key" ? key.trim() !== "" : username.trim() !== "" && password !== "";
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const auth = authStore.getState();
    if (method === "key") void auth.signInWithKey(key);
    else void auth.signInWithPassword(username.trim(), password);
  };

  const tab = (m: Method, label: string) => (
    <button
      type="button"
      role="tab"
      aria-selected={method === m}
      onClick={() => {
        setMethod(m);
        authStore.setState({ error: null });
      }}
      className={`flex-1 rounded-md py-1.5 text-sm ${
        method === m ? "bg-slate-700 text-white shadow" : "text-slate-400 hover:text-slate-200"
      }`}
    >
      {label}
    </button>
  );

  return (
    <div className="flex min-h-full items-center justify-center bg-[radial-gradient(ellipse_at_top,_rgba(99,102,241,0.18),_transparent_60%)] px-4">
      <form
        onSubmit={submit}
        className="w-full max-w-sm rounded-2xl border border-slate-800 bg-slate-900/80 p-8 shadow-2xl"
      >
        <div className="mb-6 flex items-center gap-3">
          <img src="/favicon.svg" alt="" className="h-9 w-9" />
          <div>
            <h1 className="text-xl font-semibold text-white">Nova</h1>
            <p className="text-sm text-slate-400">Sign in to chat with your models</p>
          </div>
        </div>
        <div role="tablist" className="mb-5 flex gap-1 rounded-lg bg-slate-950 p-1">
          {tab("key", "API key")}
          {tab("password", "Account")}
        </div>
        {method === "key" ? (
          <>
            <label htmlFor="api-key" className="mb-1.5 block text-sm font-medium text-slate-300">
              API key
            </label>
            <input
              id="api-key"
              type="password"
              autoComplete="off"
              autoFocus
              value={key}
              onChange={(e) => setKey(e.target.value)}
              placeholder="sk-…"
              className={`${inputClass} font-mono`}
            />
            <p className="mt-1.5 text-xs text-slate-500">
              Kept in this browser's local storage until you sign out.
            </p>
          </>
        ) : (
          <>
            <label htmlFor="username" className="mb-1.5 block text-sm font-medium text-slate-300">
              Username
            </label>
            <input
              id="username"
              autoComplete="username"
              autoFocus
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              className={inputClass}
            />
            <label htmlFor="password" className="mt-4 mb-1.5 block text-sm font-medium text-slate-300">
              Password
            </label>
            <input
              id="password"
              type="password"
              autoComplete="current-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              className={inputClass}
            />
          </>
        )}
        {error && (
          <div className="mt-4">
            <ErrorNote error={error} />
          </div>
        )}
        <button
          type="submit"
          disabled={pending || !ready}
          className="mt-6 w-full rounded-lg bg-indigo-600 py-2 text-sm font-medium text-white hover:bg-indigo-500 disabled:opacity-50"
        >
          {pending ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
