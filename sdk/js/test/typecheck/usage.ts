/* Compiled (never run) by test/types.test.mjs: the published types describe the SDK as it is
 * used, and the generated shapes line up with what the clients answer. */
import {
  ImpactAdmin,
  ImpactCaller,
  ProblemError,
  verifyWebhook,
  type Desk,
  type EventPayloads,
  type ImpactEvent,
} from '@impactdialing/sdk';

async function main(): Promise<void> {
  const admin = new ImpactAdmin({ baseUrl: 'http://127.0.0.1:8080', apiKey: 'ik_x', apiAuth: 'ia_y' });
  for await (const campaign of admin.campaigns.list({ dialer_type: 'Power' })) console.log(campaign.id);
  const stream = admin.eventStream({ types: ['survey.submitted', 'call.ended'] });
  for await (const event of stream) {
    if (event.type === 'survey.submitted') {
      const survey = event.data as EventPayloads['survey.submitted'];
      console.log(survey.answers.map((a) => a.response));
    }
  }
  const caller = await ImpactCaller.login({ baseUrl: 'http://127.0.0.1:8080', accountId: 1, pin: '123456' });
  const desk: Desk = await caller.start();
  if (desk.actions?.includes('results')) await caller.submitResults({ answers: [{ questionId: 1, possibleResponseId: 2 }], then: 'stop' });
  try {
    await caller.hangUp();
  } catch (e) {
    if (e instanceof ProblemError) console.log(e.status, e.errors.map((x) => x.field));
  }
  const event: ImpactEvent = await verifyWebhook({ secret: 'whsec_AAAA', headers: {}, body: '{}' });
  console.log(event.id);
}

void main();
