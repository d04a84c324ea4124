/**
 * A managed node's membership over its local endpoint: `clawmatrix revoke`
 * hands a revocation the authority signed to a running node here, which
 * applies and publishes it. The node only relays what the authority signed;
 * it holds no authority key.
 */
import type { Membership } from '../../membership/index.js'
import { HttpRequestError, readJsonBody } from './body.js'
import { sendJson, type LocalHttpServer } from './local-server.js'

const MAX_REVOCATION_BODY_BYTES = 16 * 1024

export function registerMembershipRoutes (http: Pick<LocalHttpServer, 'route'>, membership: Membership): void {
  http.route('POST', '/clawmatrix/revocations', async (req, res) => {
    let body: any
    try {
      body = await readJsonBody(req, MAX_REVOCATION_BODY_BYTES)
      const { isNew } = await membership.publishRevocation(body?.revocation)
      sendJson(res, 200, { applied: true, new: isNew, revocations: membership.revocationList().length })
    } catch (err: any) {
      if (!(err instanceof HttpRequestError) && err.name !== 'InvalidCredentialError') throw err
      sendJson(res, err instanceof HttpRequestError ? err.status : 400, { error: { message: err.message, type: 'invalid_request_error' } })
    }
  })
  http.route('GET', '/clawmatrix/revocations', async (_req, res) => {
    sendJson(res, 200, { authority: membership.authority, revocations: membership.revocationList() })
  })
}
