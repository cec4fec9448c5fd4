// sim.mjs evaluates an identity policy with @cloud-copilot/iam-simulate.
// stdin: {"policy": {...}, "requests": [{"action", "resource", "account",
// "principalAccount", "resourcePolicy"?}]}
// stdout: one line per request: the overall result, or "error: ..." when
// the simulator refuses the input (an unknown action, a bad ARN, a bad
// policy).
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const c of process.stdin) chunks.push(c)
const { policy, requests } = JSON.parse(Buffer.concat(chunks).toString('utf8'))

for (const r of requests) {
  const res = await runSimulation(
    {
      identityPolicies: [{ name: 'secrets-init', policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: r.resourcePolicy,
      request: {
        action: r.action,
        principal: `arn:aws:iam::${r.principalAccount}:role/app`,
        resource: { resource: r.resource, accountId: r.account },
        contextVariables: {}
      }
    },
    {}
  )
  if (res.resultType === 'error') {
    console.log('error: ' + JSON.stringify(res.errors))
  } else {
    console.log(res.overallResult)
  }
}
