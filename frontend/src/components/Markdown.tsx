import { memo, useMemo, useState, type ReactNode } from "react";
import { parseMarkdown, type Block, type Inline } from "../lib/markdown";

function renderInline(nodes: Inline[]): ReactNode[] {
  return nodes.map((n, i) => {
    switch (n.type) {
      case "text":
        return n.text;
      case "br":
        return <br key={i} />;
      case "code":
        return (
          <code
            key={i}
            className="rounded bg-slate-800 px-1.5 py-0.5 font-mono text-[0.85em] text-indigo-200"
          >
            {n.text}
          </code>
        );
      case "strong":
        return (
          <strong key={i} className="font-semibold text-white">
            {renderInline(n.children)}
          </strong>
        );
      case "em":
        return <em key={i}>{renderInline(n.children)}</em>;
      case "cite":
        return (
          <sup
            key={i}
            className="mx-0.5 rounded bg-indigo-500/20 px-1 text-[0.7em] font-medium text-indigo-200"
            title={`Source ${n.n}`}
          >
            {n.n}
          </sup>
        );
      case "link":
        return (
          <a
            key={i}
            href={n.href}
            target="_blank"
            rel="noreferrer noopener"
            className="text-indigo-300 underline"
          >
            {renderInline(n.children)}
          </a>
        );
    }
  });
}

function CodeBlock({ lang, text }: { lang: string; text: string }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    void navigator.clipboard?.writeText(text).then(() => {
      setCopied(true);
      setTimeout(() => setCopied(false), 1200);
    });
  };
  return (
    <div className="my-3 overflow-hidden rounded-lg border border-slate-700/70 bg-slate-900">
      <div className="flex items-center justify-between border-b border-slate-700/70 bg-slate-800/60 px-3 py-1 text-xs text-slate-400">
        <span className="font-mono">{lang || "code"}</span>
        <button onClick={copy} className="rounded px-1.5 py-0.5 hover:bg-slate-700 hover:text-slate-200">
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      <pre className="overflow-x-auto p-3 font-mono text-[13px] leading-relaxed text-slate-200">
        <code>{text}</code>
      </pre>
    </div>
  );
}

function renderBlock(b: Block, i: number): ReactNode {
  switch (b.type) {
    case "code":
      return <CodeBlock key={i} lang={b.lang} text={b.text} />;
    case "heading": {
      const size = ["text-xl", "text-lg", "text-base", "text-base", "text-sm", "text-sm"][b.level - 1];
      return (
        <p
          key={i}
          role="heading"
          aria-level={b.level}
          className={`mt-4 mb-2 font-semibold text-white ${size}`}
        >
          {renderInline(b.children)}
        </p>
      );
    }
    case "list": {
      const items = b.items.map((it, j) => (
        <li key={j} className="my-0.5">
          {renderInline(it)}
        </li>
      ));
      return b.ordered ? (
        <ol key={i} start={b.start} className="my-2 list-decimal space-y-0.5 pl-6">
          {items}
        </ol>
      ) : (
        <ul key={i} className="my-2 list-disc space-y-0.5 pl-6">
          {items}
        </ul>
      );
    }
    case "quote":
      return (
        <blockquote key={i} className="my-2 border-l-2 border-slate-600 pl-3 text-slate-300">
          {renderInline(b.children)}
        </blockquote>
      );
    case "paragraph":
      return (
        <p key={i} className="my-2 first:mt-0 last:mb-0">
          {renderInline(b.children)}
        </p>
      );
  }
}

export const Markdown = memo(function Markdown({ text }: { text: string }) {
  const blocks = useMemo(() => parseMarkdown(text), [text]);
  return <>{blocks.map(renderBlock)}</>;
});
