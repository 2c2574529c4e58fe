// deno-lint-ignore-file no-control-regex -- the tests look for control bytes on purpose.
/** Guest text made safe for the terminal, whole and in chunks. */
import assert from "node:assert/strict";
import { stripTerminalControls, TerminalTextFilter } from "../src/core/guest/terminal_text.ts";

const hostile = [
  "\x1b]0;pwned title\x07", // window title (OSC, BEL)
  "\x1b]52;c;ZXZpbA==\x1b\\", // clipboard write (OSC 52, ST)
  "\x1b[2J\x1b[H", // clear screen, cursor home
  "\x1b[31;1mred\x1b[0m", // colours
  "\x1bP+q544e\x1b\\", // DCS query
  "\x9b6n", // 8-bit CSI: cursor position report
  "\x07\x08\x7f\x00", // bell, backspace, DEL, NUL
];

Deno.test("escape sequences and control characters go; text, newlines and tabs stay", () => {
  const text = `ok\t${hostile.join("")}\nline two\r\n`;
  const clean = stripTerminalControls(text);
  assert.equal(clean, "ok\tred6n\nline two\n");
  assert.doesNotMatch(clean, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  assert.equal(stripTerminalControls("50%\r75%\r", { keepCarriageReturn: true }), "50%\r75%\r");
  assert.equal(stripTerminalControls("plain ünïcode ✓"), "plain ünïcode ✓");
});

Deno.test("a sequence split across chunks is removed whole", () => {
  const stream = `before ${hostile.join(" ")} after\n`;
  const whole = stripTerminalControls(stream);
  for (let size = 1; size <= 16; size++) {
    const filter = new TerminalTextFilter();
    let out = "";
    for (let i = 0; i < stream.length; i += size) out += filter.push(stream.slice(i, i + size));
    out += filter.flush();
    assert.equal(out, whole, `chunks of ${size}`);
    assert.doesNotMatch(out, /\x1b/);
  }
});
