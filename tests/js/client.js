// A line-oriented driver around the real wukongimjssdk, for end-to-end tests.
// Usage: node client.js <addr ws://host:port> <uid> [token] [deviceFlag]
// stdin, one JSON command per line:
//   {"op":"send","channel":"bob","type":1,"text":"hi"}   send a text message
//   {"op":"disconnect"} | {"op":"connect"} | {"op":"exit"}
// stdout, one JSON event per line (SDK chatter goes to stderr):
//   {"ev":"status","status":1,"reason":0}   (1 connected, 3 connect failed, 4 kicked, 0 disconnected)
//   {"ev":"recv","from":..,"channel":..,"type":..,"seq":..,"id":..,"clientMsgNo":..,"text":..}
//   {"ev":"ack","clientSeq":..,"id":..,"seq":..,"reason":..}
//   {"ev":"sent","clientSeq":..,"clientMsgNo":..}
const out = process.stdout.write.bind(process.stdout);
const emit = (o) => out(JSON.stringify(o) + "\n");
// The SDK logs with console.log: keep stdout for our events only.
console.log = (...a) => process.stderr.write(a.map(String).join(" ") + "\n");
console.info = console.log;
console.debug = console.log;
globalThis.WebSocket = require("ws");
const path = require("path");
const sdk = require(path.join(__dirname, "dist", "sdk.cjs"));
const { WKSDK, MessageText, Channel } = sdk;

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
im.chatManager.addMessageStatusListener((ack) => {
  emit({ ev: "ack", clientSeq: ack.clientSeq, id: String(ack.messageID), seq: ack.messageSeq, reason: ack.reasonCode });
});

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
