/** The process environment minus `hidden` variables, plus `extra` (which may not re-add hidden ones). */
export function childEnv (hidden: Iterable<string>, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  for (const name of hidden) delete env[name]
  return env
}
