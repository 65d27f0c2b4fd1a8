import { describe, expect, it } from "vitest";
import { parseInline, parseMarkdown } from "./markdown";

describe("parseMarkdown", () => {
  it("splits paragraphs, headings, lists, quotes and code fences", () => {
    const md = [
      "# Title",
      "",
      "Some text",
      "second line",
      "",
      "- one",
      "- two",
      "",
      "3. three",
      "4. four",
      "",
      "> quoted",
      "",
      "```python",
      "print('hi')",
      "",
      "x = 1",
      "```",
      "after",
    ].join("\n");
    const blocks = parseMarkdown(md);
    expect(blocks.map((b) => b.type)).toEqual([
      "heading",
      "paragraph",
      "list",
      "list",
      "quote",
      "code",
      "paragraph",
    ]);
    expect(blocks[0]).toMatchObject({ type: "heading", level: 1 });
    expect(blocks[2]).toMatchObject({ ordered: false, items: [[{ text: "one" }], [{ text: "two" }]] });
    expect(blocks[3]).toMatchObject({ ordered: true, start: 3 });
    expect(blocks[5]).toEqual({ type: "code", lang: "python", text: "print('hi')\n\nx = 1", closed: true });
  });

  it("keeps an unclosed fence as code while the answer is still streaming", () => {
    const blocks = parseMarkdown("Here:\n```js\nconst a = 1;\n# not a heading");
    expect(blocks[1]).toEqual({
      type: "code",
      lang: "js",
      text: "const a = 1;\n# not a heading",
      closed: false,
    });
  });

  it("does not treat markup inside code as markdown", () => {
    const blocks = parseMarkdown("```\n**not bold** <script>\n```");
    expect(blocks).toEqual([{ type: "code", lang: "", text: "**not bold** <script>", closed: true }]);
  });
});

describe("parseInline", () => {
  it("parses code, bold, italics and safe links", () => {
    expect(parseInline("use `npm ci` **now** and *then* [docs](https://x.dev/a)")).toEqual([
      { type: "text", text: "use " },
      { type: "code", text: "npm ci" },
      { type: "text", text: " " },
      { type: "strong", children: [{ type: "text", text: "now" }] },
      { type: "text", text: " and " },
      { type: "em", children: [{ type: "text", text: "then" }] },
      { type: "text", text: " " },
      { type: "link", href: "https://x.dev/a", children: [{ type: "text", text: "docs" }] },
    ]);
  });

  it("refuses javascript: links and leaves them as text", () => {
    expect(parseInline("[x](javascript:alert(1))")).toEqual([
      { type: "text", text: "[x](javascript:alert(1))" },
    ]);
  });

  it("leaves snake_case, lone stars and unclosed markers alone", () => {
    expect(parseInline("my_var_name 2 * 3 `open")).toEqual([
      { type: "text", text: "my_var_name 2 * 3 `open" },
    ]);
  });

  it("marks [n] citation references, but not indexing or links", () => {
    expect(parseInline("SSE is plain HTTP [1][2]. See arr[3] and [4](https://x.dev).")).toEqual([
      { type: "text", text: "SSE is plain HTTP " },
      { type: "cite", n: 1 },
      { type: "cite", n: 2 },
      { type: "text", text: ". See arr[3] and " },
      { type: "link", href: "https://x.dev", children: [{ type: "text", text: "4" }] },
      { type: "text", text: "." },
    ]);
  });

  it("turns newlines into breaks and honours escapes", () => {
    expect(parseInline("a\n\\*b\\*")).toEqual([
      { type: "text", text: "a" },
      { type: "br" },
      { type: "text", text: "*b*" },
    ]);
  });
});
