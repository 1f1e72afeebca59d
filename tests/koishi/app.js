// A real Koishi app for end-to-end tests: one OneBot bot over forward WebSocket, `ping` →
// `pong from <selfId>`.
//
// Settings come from the environment the test passes: KOISHI_ENDPOINT (the gateway's WebSocket
// URL), KOISHI_SELF_ID (the account the bot is configured as), KOISHI_TOKEN (optional).
// It prints one line per fact the harness (tests/koishi_harness.py) waits on, each a word and a
// JSON object:
//   KOISHI_CONNECTED {"selfId", "loginId"}              the bot is online; loginId is the user_id
//                                                       get_login_info answered
//   KOISHI_RECEIVED {"selfId", "botSelfId", "type", "channelId", "userId", "messageId", "content"}
//                                                       a message event reached the bot (selfId:
//                                                       the event's self_id; botSelfId: the bot's)
//   KOISHI_REPLIED {"selfId", "channelId", "content"}   the bot's answer was sent
'use strict'

const { Context } = require('koishi')
const HTTP = require('@koishijs/plugin-http')
const OneBot = require('koishi-plugin-adapter-onebot')

const endpoint = process.env.KOISHI_ENDPOINT
const selfId = process.env.KOISHI_SELF_ID
if (!endpoint || !selfId) {
  console.error('KOISHI_ENDPOINT and KOISHI_SELF_ID are required')
  process.exit(2)
}

function report(word, fields) {
  process.stdout.write(`${word} ${JSON.stringify(fields)}\n`)
}

const ctx = new Context()
// The adapter opens its WebSocket through the HTTP service.
ctx.plugin(HTTP.default || HTTP)
ctx.plugin(OneBot.default || OneBot, {
  selfId,
  protocol: 'ws',
  endpoint,
  token: process.env.KOISHI_TOKEN || undefined,
  // A lost connection is retried quickly, so a test never waits on the default backoff.
  retryTimes: 3,
  retryInterval: 200,
})

ctx.on('login-updated', (session) => {
  const bot = session.bot
  // Status 1 is ONLINE in the Satori protocol.
  // loginId is the account get_login_info answered with (the bot's selfId is its config).
  if (bot.status === 1) report('KOISHI_CONNECTED', { selfId: bot.selfId, loginId: bot.user?.id })
})

// `message` sees every message event, before any command or middleware filters it.
ctx.on('message', async (session) => {
  const content = session.content
  report('KOISHI_RECEIVED', {
    selfId: session.selfId,
    botSelfId: session.bot.selfId,
    type: session.isDirect ? 'private' : 'group',
    channelId: session.channelId,
    userId: session.userId,
    messageId: session.messageId,
    content,
  })
  if (content === 'ping') {
    const answer = `pong from ${session.selfId}`
    await session.send(answer)
    report('KOISHI_REPLIED', { selfId: session.selfId, channelId: session.channelId, content: answer })
  }
})

process.on('SIGTERM', () => {
  ctx.stop().finally(() => process.exit(0))
})

ctx.start()
