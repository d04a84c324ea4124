/**
 * The OpenClaw plugin entry (`openclaw.extensions` in package.json points at
 * its build, dist/openclaw/index.js).
 */
import { definePluginEntry } from 'openclaw/plugin-sdk/plugin-entry'
import { PLUGIN_DESCRIPTION, PLUGIN_ID, PLUGIN_NAME } from './manifest.js'
import { registerClawmatrix } from './plugin.js'

export default definePluginEntry({
  id: PLUGIN_ID,
  name: PLUGIN_NAME,
  description: PLUGIN_DESCRIPTION,
  register: api => { registerClawmatrix(api) }
})
