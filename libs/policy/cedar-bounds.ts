/**
 * Bounds on Cedar text, checked before Cedar sees it. Cedar-WASM parses and evaluates recursively
 * on a fixed WASM stack: ~160 nested parentheses overflow it, and a trap leaves that WASM instance
 * broken for every later call. Real policies are nowhere near these limits; hostile ones are
 * refused here with a located 400 instead.
 */
export const MAX_POLICY_CHARS = 65_536;
/** Nesting of (, [ and { together, counting a policy's own `(` and `{`. */
export const MAX_NESTING = 32;
/** Binary and logical operators (and `in`, `has`, `like`, `is`) in one policy. */
export const MAX_OPERATORS = 128;

export interface BoundsProblem {
  message: string;
  line: number;
  column: number;
}

const OPEN = new Set(['(', '[', '{']);
const CLOSE = new Set([')', ']', '}']);
const KEYWORD_OPERATORS = new Set(['in', 'has', 'like', 'is']);

/**
 * The first bound `text` breaks, located; undefined when it keeps them all. One linear pass that
 * skips string literals (with their escapes) and `//` comments, so brackets and operators inside
 * them are not counted. Operators are counted per policy: a `;` at depth 0 starts the next one.
 */
export function cedarBoundsProblem(text: string): BoundsProblem | undefined {
  if (text.length > MAX_POLICY_CHARS) return { message: `must be at most ${MAX_POLICY_CHARS} characters`, line: 1, column: 1 };
  let depth = 0;
  let operators = 0;
  let line = 1;
  let lineStart = 0;
  const at = (i: number, message: string): BoundsProblem => ({ message, line, column: i - lineStart + 1 });
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === '\n') {
      line++;
      lineStart = i + 1;
      continue;
    }
    if (char === '"') {
      // A string literal: up to the closing quote, an escaped quote does not close it.
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\') i++;
        else if (text[i] === '\n') {
          line++;
          lineStart = i + 1;
        }
      }
      continue;
    }
    if (char === '/' && text[i + 1] === '/') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
      continue;
    }
    if (OPEN.has(char)) {
      if (++depth > MAX_NESTING) return at(i, `nests brackets deeper than ${MAX_NESTING} levels`);
      continue;
    }
    if (CLOSE.has(char)) {
      depth = Math.max(0, depth - 1);
      continue;
    }
    if (char === ';' && depth === 0) {
      operators = 0;
      continue;
    }
    let operator = 0;
    const pair = text.slice(i, i + 2);
    if (pair === '&&' || pair === '||' || pair === '==' || pair === '!=' || pair === '<=' || pair === '>=') operator = 2;
    else if (char === '<' || char === '>' || char === '+' || char === '-' || char === '*') operator = 1;
    else if (isWordStart(char) && (i === 0 || !isWordPart(text[i - 1]!))) {
      let end = i + 1;
      while (end < text.length && isWordPart(text[end]!)) end++;
      if (KEYWORD_OPERATORS.has(text.slice(i, end))) operator = end - i;
      else {
        i = end - 1;
        continue;
      }
    }
    if (operator > 0) {
      if (++operators > MAX_OPERATORS) return at(i, `has more than ${MAX_OPERATORS} operators in one policy`);
      i += operator - 1;
    }
  }
  return undefined;
}

function isWordStart(char: string): boolean {
  return (char >= 'a' && char <= 'z') || (char >= 'A' && char <= 'Z') || char === '_';
}

function isWordPart(char: string): boolean {
  return isWordStart(char) || (char >= '0' && char <= '9');
}
