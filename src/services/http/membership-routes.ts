/**
 * A managed node's membership over its local endpoint: `clawmatrix revoke`
 * hands a revocation the authority signed to a running node here, which
 * applies and publishes it. The node only relays what the authority signed;
 * it holds no authority key.
 */
import type { Membership } from '../../membership/index.js'
import { httpErrorOf } from '../errors.js'
import { readJsonBody } from './body.js'
import { RouteGroup, sendJson, type LocalHttpServer } from './local-server.js'
import type { Startable } from '@libp2p/interface'

const MAX_REVOCATION_BODY_BYTES = 16 * 1024

/** POST and GET /clawmatrix/revocations, served from start to stop. */
export class MembershipRoutes implements Startable {
  private readonly routes: RouteGroup

  constructor (http: Pick<LocalHttpServer, 'route'>, private readonly membership: Membership) {
    this.routes = new RouteGroup(http)
  }

  start (): void {
    const { membership } = this
    const http = this.routes
    http.route('POST', '/clawmatrix/revocations', async (req, res) => {
      let body: any
      try {
        body = await readJsonBody(req, MAX_REVOCATION_BODY_BYTES)
        const { isNew } = await membership.publishRevocation(body?.revocation)
        sendJson(res, 200, { applied: true, new: isNew, revocations: membership.revocationList().length })
      } catch (err: any) {
        if (err.name !== 'HttpRequestError' && err.name !== 'InvalidCredentialError') throw err
        const { status, body } = httpErrorOf(err)
        sendJson(res, status, body)
      }
    })
    http.route('GET', '/clawmatrix/revocations', async (_req, res) => {
      sendJson(res, 200, { authority: membership.authority, revocations: membership.revocationList() })
    })
  }

  stop (): void {
    this.routes.clear()
  }
}
