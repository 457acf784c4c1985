// A line-oriented driver around the real wukongimjssdk, for end-to-end tests.
// Usage: node client.js <addr ws://host:port> <uid> [token] [deviceFlag]
// stdin, one JSON command per line:
//   {"op":"send","channel":"bob","type":1,"text":"hi"}   send a text message
//   {"op":"disconnect"} | {"op":"connect"} | {"op":"exit"}
//   {"op":"conversations","api":"http://host:port"}   the SDK's conversation sync, through a
//       provider that fetches /conversation/sync and converts it as the official demo does
//       (Convert.toConversation / toMessage)
// stdout, one JSON event per line (SDK chatter goes to stderr):
//   {"ev":"status","status":1,"reason":0}   (1 connected, 3 connect failed, 4 kicked, 0 disconnected)
//   {"ev":"recv","from":..,"channel":..,"type":..,"seq":..,"id":..,"clientMsgNo":..,"text":..}
//   {"ev":"ack","clientSeq":..,"id":..,"seq":..,"reason":..}
//   {"ev":"sent","clientSeq":..,"clientMsgNo":..}
//   {"ev":"cmd","cmd":..,"param":..,"channel":..,"type":..}   a command message (content type 99)
//   {"ev":"conversations","list":[{"channel","type","unread","lastText","lastSeq"}]}
const out = process.stdout.write.bind(process.stdout);
const emit = (o) => out(JSON.stringify(o) + "\n");
// The SDK logs with console.log: keep stdout for our events only.
console.log = (...a) => process.stderr.write(a.map(String).join(" ") + "\n");
console.info = console.log;
console.debug = console.log;
globalThis.WebSocket = require("ws");
const path = require("path");
const sdk = require(path.join(__dirname, "dist", "sdk.cjs"));
const { WKSDK, MessageText, Channel, Conversation, Message } = sdk;

const [addr, uid, token, deviceFlag] = process.argv.slice(2);
if (!addr || !uid) {
  process.stderr.write("usage: node client.js ws://host:port uid [token] [deviceFlag]\n");
  process.exit(2);
}
const im = WKSDK.shared();
im.config.addr = addr;
im.config.uid = uid;
im.config.token = token || "";
if (deviceFlag) im.config.deviceFlag = Number(deviceFlag);

im.connectManager.addConnectStatusListener((status, reasonCode) => {
  emit({ ev: "status", status, reason: reasonCode || 0 });
});
im.chatManager.addMessageListener((m) => {
  if (m.send) return; // our own outgoing message echo
  emit({
    ev: "recv",
    from: m.fromUID,
    channel: m.channel.channelID,
    type: m.channel.channelType,
    seq: m.messageSeq,
    id: String(m.messageID),
    clientMsgNo: m.clientMsgNo,
    text: m.content && m.content.text,
    contentType: m.contentType,
  });
});
im.chatManager.addCMDListener((m) => {
  emit({
    ev: "cmd",
    cmd: m.content && m.content.cmd,
    param: m.content && m.content.param,
    channel: m.channel.channelID,
    type: m.channel.channelType,
  });
});
im.chatManager.addMessageStatusListener((ack) => {
  emit({ ev: "ack", clientSeq: ack.clientSeq, id: String(ack.messageID), seq: ack.messageSeq, reason: ack.reasonCode });
});

// The official demo's conversion of the server's JSON into SDK objects.
function toMessage(j) {
  const m = new Message();
  m.messageID = String(j.message_id);
  m.messageSeq = j.message_seq;
  m.clientMsgNo = j.client_msg_no;
  m.fromUID = j.from_uid;
  m.channel = new Channel(j.channel_id, j.channel_type);
  m.timestamp = j.timestamp;
  const body = JSON.parse(Buffer.from(j.payload, "base64").toString("utf8"));
  m.content = im.getMessageContent(body.type);
  m.content.decode(Buffer.from(JSON.stringify(body)));
  return m;
}
function toConversation(j) {
  const c = new Conversation();
  c.channel = new Channel(j.channel_id, j.channel_type);
  c.unread = j.unread || 0;
  c.timestamp = j.timestamp;
  if (j.recents && j.recents.length > 0) c.lastMessage = toMessage(j.recents[0]);
  return c;
}
let apiBase = "";
im.config.provider.syncConversationsCallback = async () => {
  const r = await fetch(apiBase + "/conversation/sync", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ uid, version: 0, msg_count: 1 }),
  });
  const list = await r.json();
  return list.map(toConversation);
};
im.config.provider.syncRemindersCallback = async () => [];

const rl = require("readline").createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    emit({ ev: "error", message: "bad command: " + e.message });
    return;
  }
  try {
    switch (cmd.op) {
      case "send": {
        const m = await im.chatManager.send(new MessageText(cmd.text), new Channel(cmd.channel, cmd.type || 1));
        emit({ ev: "sent", clientSeq: m.clientSeq, clientMsgNo: m.clientMsgNo });
        break;
      }
      case "connect":
        im.connect();
        break;
      case "conversations": {
        apiBase = cmd.api;
        const list = await im.conversationManager.sync({});
        emit({
          ev: "conversations",
          list: list.map((c) => ({
            channel: c.channel.channelID,
            type: c.channel.channelType,
            unread: c.unread,
            lastText: c.lastMessage && c.lastMessage.content && c.lastMessage.content.text,
            lastSeq: c.lastMessage && c.lastMessage.messageSeq,
          })),
        });
        break;
      }
      case "disconnect":
        im.disconnect(); // the SDK notifies no listener for a local disconnect
        emit({ ev: "status", status: 0, reason: 0, local: true });
        break;
      case "exit":
        im.disconnect();
        process.exit(0);
      default:
        emit({ ev: "error", message: "unknown op " + cmd.op });
    }
  } catch (e) {
    emit({ ev: "error", message: String(e && e.stack || e) });
  }
});
rl.on("close", () => process.exit(0));
im.connect();
