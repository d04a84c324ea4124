/**
 * Control characters in text another member wrote (a description, a refusal
 * message, a peer's error) could forge lines in a log or move the cursor in a
 * terminal. Every line that can hold such text goes through `escapeControl`:
 * C0 and C1 controls, DEL and the Unicode line separators become visible
 * escapes (`\n`, `\x1b`, `\u2028`), everything else is kept.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

export function escapeControl (text: string): string {
  return text.replace(CONTROL, ch => NAMED[ch] ?? (ch.charCodeAt(0) <= 0xff
    ? `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`
    : `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`))
}

interface LineLog {
  info(message: string): void
  warn(message: string): void
}

/** A log whose every line is escaped before it reaches `log`: one line in, one line out. */
export function escapingLog<L extends LineLog> (log: L): LineLog {
  return {
    info: message => { log.info(escapeControl(message)) },
    warn: message => { log.warn(escapeControl(message)) }
  }
}

/** Escapes each line of a multi-line report, keeping its own line breaks. */
export function escapeLines (text: string): string {
  return text.split('\n').map(escapeControl).join('\n')
}
