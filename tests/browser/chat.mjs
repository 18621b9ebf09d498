// Two people chat through the browser client, in a real chromium driven by playwright-core:
// direct and group rooms, going offline and catching up, mentions and notification settings,
// and moderation: a third member (Sam, a REST client) is reported, blocked, banned; a member
// is muted; the owner works the room's report queue; data export and account deletion.
// Usage: node chat.mjs BASE_URL OUTDIR. Prints one JSON object on stdout: {ok, steps, ...};
// exits 0 when every check passed. Screenshots go to OUTDIR.
import { deflateSync } from "node:zlib";
import { people } from "./people.mjs";
import { TIMEOUT, scenario } from "./scenario.mjs";

const [baseUrl, outDir] = process.argv.slice(2);
if (!baseUrl || !outDir) {
  console.error("usage: node chat.mjs BASE_URL OUTDIR");
  process.exit(2);
}
const { register, pageApi, restUser } = people(baseUrl);

const { report, step, expect, shot, run } = scenario(outDir, { dialogs: [], console_errors: [], websockets: {}, auth_frames: {}, sent_mentions: [] });

/** A small valid PNG (a colour gradient), made here so the test needs no fixture file. */
function makePng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buffer) => {
    let c = 0xffffffff;
    for (const byte of buffer) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([length, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) {
      row[1 + x * 3] = Math.round((255 * x) / width);
      row[2 + x * 3] = Math.round((255 * y) / height);
      row[3 + x * 3] = 180;
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function watch(page, who) {
  report.websockets[who] = 0;
  report.auth_frames[who] = 0;
  page.on("websocket", (socket) => {
    report.websockets[who] += 1;
    socket.on("framesent", (frame) => {
      const payload = String(frame.payload);
      if (payload.includes('"type":"auth"')) report.auth_frames[who] += 1;
      if (payload.includes('"type":"message.send"') && payload.includes('"mentions"')) {
        const { mentions } = JSON.parse(payload);
        if (mentions.user_ids.length || mentions.room) report.sent_mentions.push({ who, mentions });
      }
    });
  });
  page.on("dialog", async (dialog) => {
    report.dialogs.push({ who, type: dialog.type(), message: dialog.message() });
    await dialog.dismiss();
  });
  page.on("pageerror", (error) => report.page_errors.push({ who, message: String(error) }));
  page.on("console", (message) => {
    if (message.type() === "error") report.console_errors.push({ who, text: message.text() });
  });
}

async function send(page, text) {
  await page.fill(".composer-input", text);
  await page.press(".composer-input", "Enter");
}

/** The message with this exact text, once it is shown as delivered (not pending). */
function message(page, text) {
  return page.locator("li.msg[data-id]", { has: page.locator(".text", { hasText: text }) });
}

async function openRoom(page, name) {
  await page.locator(".room-item", { has: page.locator(".room-name", { hasText: name }) }).click();
  await page.waitForSelector(".room-view:not([hidden])");
}

async function react(page, text, emoji) {
  const target = message(page, text);
  await target.hover();
  await target.locator(`.act-react[data-emoji="${emoji}"]`).click();
}

const BULK = 520;

/** Send `count` messages over REST with the page's own session (as another client would). */
async function postMany(page, roomId, count, suffix) {
  let next = 0;
  let token = null;
  const readToken = () => page.evaluate(() => JSON.parse(localStorage.getItem("cronchat.session")).access_token);
  const worker = async () => {
    while (next < count) {
      const index = next++;
      for (let attempt = 0; attempt < 3; attempt += 1) {
        if (!token || index % 25 === 0 || attempt > 0) token = await readToken();
        const response = await fetch(`${baseUrl}/api/v1/rooms/${roomId}/messages`, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ client_msg_id: `bulk-${suffix}-${index}`, text: `Bulk ${index}` }),
        });
        if (response.ok) break;
        if (response.status !== 401 || attempt === 2) throw new Error(`bulk send answered ${response.status}`);
        await page.waitForTimeout(200); // the page refreshes its token
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

/** GET /api/v1/rooms/{id} with the page's own session (its token refreshed when needed). */
async function roomOf(page, roomId) {
  for (let attempt = 0; ; attempt += 1) {
    const answer = await page.evaluate(async (id) => {
      const token = JSON.parse(localStorage.getItem("cronchat.session")).access_token;
      const response = await fetch(`/api/v1/rooms/${id}`, { headers: { Authorization: `Bearer ${token}` } });
      return { status: response.status, room: await response.json() };
    }, roomId);
    if (answer.status === 200) return answer.room;
    if (answer.status !== 401 || attempt === 2) throw new Error(`GET /rooms/${roomId} answered ${answer.status}`);
    await page.waitForTimeout(200); // the page refreshes its token
  }
}

function roomItem(page, name) {
  return page.locator(".room-item", { has: page.locator(".room-name", { hasText: name }) });
}

/** Make the tab look hidden (or visible again) to the page, as when the user switches tabs. */
async function setHidden(page, hidden) {
  await page.evaluate((hide) => {
    if (hide) Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    else delete document.visibilityState;
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

async function main(browser) {
  const suffix = Date.now().toString(36).slice(-5);
  const alice = { username: `alice_${suffix}`, name: "Alice Adams" };
  const bob = { username: `bob_${suffix}`, name: "Bob Brown" };
  const contextA = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const contextB = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  contextA.setDefaultTimeout(TIMEOUT);
  contextB.setDefaultTimeout(TIMEOUT);
  const pageA = await contextA.newPage();
  const pageB = await contextB.newPage();
  watch(pageA, "alice");
  watch(pageB, "bob");

  const page = await pageA.goto(baseUrl);
  const csp = page.headers()["content-security-policy"] || "";
  await expect(csp.includes("script-src 'self'") && csp.includes("object-src 'none'"), `a strict CSP, got ${csp}`);
  // A wrong password shows the API's error message.
  await pageA.fill("input[name=username]", `nobody_${Date.now().toString(36).slice(-5)}`);
  await pageA.fill("input[name=password]", "wrong password");
  await pageA.press("input[name=password]", "Enter");
  await pageA.waitForSelector(".form-error:not(:empty)");
  report.login_error = await pageA.textContent(".form-error");
  await shot(pageA, "01-login");
  await register(pageA, alice.username, alice.name);
  await register(pageB, bob.username, bob.name);
  step("registered both users");

  // Direct room: text, reply, reaction, image.
  await pageA.click(".new-direct");
  await pageA.fill(".user-search", bob.username);
  await pageA.click(`.user-result[data-username="${bob.username}"]`);
  await pageA.waitForSelector(".room-view:not([hidden])");
  await send(pageA, "Hi Bob! Lunch at noon? https://example.com/menu");
  await message(pageA, "Hi Bob! Lunch at noon?").waitFor();
  await pageB.locator(".room-item .badge").first().waitFor();
  await openRoom(pageB, alice.name);
  await message(pageB, "Hi Bob! Lunch at noon?").waitFor();
  const link = await message(pageB, "Lunch at noon").locator("a").getAttribute("href");
  await expect(link === "https://example.com/menu", `an http(s) link, got ${link}`);
  step("direct text delivered live");

  const first = message(pageB, "Hi Bob! Lunch at noon?");
  await first.hover();
  await first.locator(".act-reply").click();
  await send(pageB, "Sure, see you there");
  const reply = message(pageA, "Sure, see you there");
  await reply.waitFor();
  await expect((await reply.locator(".quote-text").textContent()).includes("Lunch at noon"), "the reply quotes the first message");
  step("reply shown with its quote");

  await react(pageA, "Sure, see you there", "👍");
  await message(pageB, "Sure, see you there").locator('.reaction[data-emoji="👍"] .count', { hasText: "1" }).waitFor();
  await react(pageB, "Sure, see you there", "👍");
  await message(pageA, "Sure, see you there").locator('.reaction[data-emoji="👍"] .count', { hasText: "2" }).waitFor();
  await message(pageB, "Sure, see you there").locator('.reaction.me[data-emoji="👍"]').click();
  await message(pageA, "Sure, see you there").locator('.reaction[data-emoji="👍"] .count', { hasText: "1" }).waitFor();
  step("reactions added, counted and removed");

  await pageA.setInputFiles(".file-input", { name: "gradient.png", mimeType: "image/png", buffer: makePng(160, 120) });
  await pageA.waitForSelector(".attachment-preview:not([hidden]) .preview-image");
  await send(pageA, "Our table");
  const imageB = message(pageB, "Our table").locator("img.thumb");
  await imageB.waitFor();
  await pageB.waitForFunction(() => [...document.querySelectorAll("img.thumb")].some((img) => img.complete && img.naturalWidth > 0));
  await message(pageB, "Our table").locator(".thumb-button").click();
  await pageB.waitForFunction(() => {
    const img = document.querySelector(".full-image");
    return img && img.complete && img.naturalWidth === 160;
  });
  await shot(pageB, "04-image-full-size");
  await pageB.keyboard.press("Escape");
  step("image uploaded, thumbnail shown, opens full size");

  // Seen: Bob has the room open at the bottom, so Alice's last message shows "Seen".
  await message(pageA, "Our table").locator(".delivery", { hasText: "Seen" }).waitFor();
  step("read receipt shown");

  // Typing indicator.
  await pageB.type(".composer-input", "typing");
  await pageA.waitForSelector(".typing:text-matches('is typing')");
  await pageB.fill(".composer-input", "");
  step("typing indicator shown");

  // Group room.
  await pageA.click(".new-group");
  await pageA.fill(".group-name", "Lunch crew");
  await pageA.fill(".user-search", bob.username);
  await pageA.click(`.user-result[data-username="${bob.username}"]`);
  await pageA.click(".create-group");
  await pageA.waitForSelector(".room-title:text('Lunch crew')");
  await send(pageA, "Welcome to the crew");
  await openRoom(pageB, "Lunch crew");
  await message(pageB, "Welcome to the crew").waitFor();
  const welcome = message(pageB, "Welcome to the crew");
  await welcome.hover();
  await welcome.locator(".act-reply").click();
  await send(pageB, "Glad to be here");
  await message(pageA, "Glad to be here").locator(".quote").waitFor();
  await react(pageB, "Welcome to the crew", "🎉");
  await message(pageA, "Welcome to the crew").locator('.reaction[data-emoji="🎉"] .count', { hasText: "1" }).waitFor();
  await pageA.setInputFiles(".file-input", { name: "crew.png", mimeType: "image/png", buffer: makePng(120, 90) });
  await send(pageA, "Group photo");
  await message(pageB, "Group photo").locator("img.thumb").waitFor();
  step("group room: text, reply, reaction, image");

  // The script-looking message is shown as text, and no dialog fires.
  const xss = "<img src=x onerror=alert(1)>";
  await send(pageA, xss);
  await message(pageB, xss).waitFor();
  const shown = await message(pageB, xss).locator(".text").textContent();
  await expect(shown === xss, `the markup shown as text, got ${shown}`);
  const injected = await pageB.locator(".messages img[src='x']").count();
  await expect(injected === 0, "no <img src=x> element in the page");
  await shot(pageB, "05-group-bob");
  step("markup shown as text");

  // Bob goes offline; Alice carries on in both rooms; Bob comes back and catches up.
  await openRoom(pageB, alice.name);
  await contextB.setOffline(true);
  await pageB.waitForSelector(".status-dot[data-status=offline], .status-dot[data-status=connecting]");
  await pageA.waitForSelector(".room-item .presence.offline");
  step("bob offline");
  await openRoom(pageA, bob.name);
  const missed = ["Missed one", "Missed two", "Missed three"];
  for (const text of missed) await send(pageA, text);
  await react(pageA, "Sure, see you there", "❤️");
  const edited = message(pageA, "Hi Bob! Lunch at noon?");
  await edited.hover();
  await edited.locator(".act-edit").click();
  await pageA.fill(".composer-input", "Hi Bob! Lunch at 12:30?");
  await pageA.press(".composer-input", "Enter");
  await message(pageA, "Lunch at 12:30").locator(".edited").waitFor();
  await openRoom(pageA, "Lunch crew");
  await send(pageA, "Missed in the group");
  await message(pageA, "Missed in the group").locator(".delivery", { hasText: "Sent" }).waitFor();
  // More than a resume replays (500 events): Bob's client must page /events for the group.
  const groupId = await pageA.locator(".room-item", { has: pageA.locator(".room-name", { hasText: "Lunch crew" }) }).getAttribute("data-room-id");
  await postMany(pageA, groupId, BULK, suffix);
  step(`alice sent ${BULK} more group messages by REST`);
  // Bob sends while offline: shown as waiting, delivered once he is back.
  await send(pageB, "Written while offline");
  await pageB.waitForSelector("li.msg.pending");
  await shot(pageB, "06-bob-offline");
  await contextB.setOffline(false);
  await pageB.waitForSelector(".status-dot[data-status=online]");
  step("bob back online");
  for (const text of missed) await message(pageB, text).waitFor();
  step("bob sees what he missed in the direct room");
  await message(pageB, "Lunch at 12:30").waitFor();
  await message(pageB, "Sure, see you there").locator('.reaction[data-emoji="❤️"]').waitFor();
  await pageA.locator(".room-last", { hasText: "Written while offline" }).waitFor();
  await pageB.waitForFunction(() => !document.querySelector("li.msg.pending"));
  await pageB.waitForTimeout(500);
  const seen = await pageB.$$eval("li.msg[data-id]", (items) => items.map((item) => ({ id: item.dataset.id, seq: Number(item.dataset.seq), text: item.querySelector(".text")?.textContent || "" })));
  const ids = seen.map((item) => item.id);
  await expect(new Set(ids).size === ids.length, `no duplicate message, got ${JSON.stringify(ids)}`);
  for (const text of [...missed, "Written while offline"]) {
    const count = seen.filter((item) => item.text === text).length;
    await expect(count === 1, `"${text}" exactly once, got ${count}`);
  }
  const seqs = seen.map((item) => item.seq);
  await expect(seqs.every((seq, index) => index === 0 || seq > seqs[index - 1]), `messages in seq order, got ${seqs}`);
  await pageB.locator(".room-item", { has: pageB.locator(".room-name", { hasText: "Lunch crew" }) }).locator(".badge").waitFor();
  report.after_reconnect = { messages: seen.length, ids: ids.length };
  await shot(pageB, "07-bob-caught-up");
  step("direct room checked");
  await openRoom(pageB, "Lunch crew");
  await message(pageB, "Missed in the group").waitFor();
  await message(pageB, `Bulk ${BULK - 1}`).waitFor();
  step("group caught up");
  const groupTexts = await pageB.$$eval("li.msg[data-id] .text", (items) => items.map((item) => item.textContent));
  await expect(groupTexts.filter((text) => text === "Missed in the group").length === 1, "the group message once");
  const bulk = groupTexts.filter((text) => text.startsWith("Bulk "));
  await expect(bulk.length === BULK && new Set(bulk).size === BULK, `${BULK} bulk messages once each, got ${bulk.length}`);
  report.bulk_messages_seen = bulk.length;
  step("bob caught up: everything missed, nothing twice");

  // Deleting one's own message leaves a tombstone for both.
  await send(pageB, "Oops, wrong room");
  const oops = message(pageB, "Oops, wrong room");
  await oops.hover();
  await oops.locator(".act-delete").click();
  await pageB.click(".confirm-yes");
  await pageA.locator(".msg.deleted .tombstone").waitFor();
  await pageB.locator(".msg.deleted .tombstone").waitFor();
  step("message deleted");

  // Escape cancels a reply.
  const glad = message(pageB, "Glad to be here");
  await glad.hover();
  await glad.locator(".act-reply").click();
  await pageB.waitForSelector(".context-bar:not([hidden])");
  await pageB.press(".composer-input", "Escape");
  await pageB.waitForSelector(".context-bar", { state: "hidden" });
  step("escape cancels a reply");

  // Screens for the record: desktop, and phone width.
  await openRoom(pageA, bob.name);
  await shot(pageA, "02-direct-alice");
  await pageB.setViewportSize({ width: 390, height: 760 });
  await shot(pageB, "08-phone-room");
  await pageB.click(".room-head .back");
  await shot(pageB, "09-phone-rooms");
  await pageA.click(".members-button");
  await pageA.waitForSelector(".member-list .member");
  await shot(pageA, "03-members");
  await pageA.keyboard.press("Escape");
  step("screenshots taken");

  // Profile: a new avatar and bio.
  await pageA.click(".me");
  await pageA.setInputFiles(".avatar-file", { name: "me.png", mimeType: "image/png", buffer: makePng(96, 96) });
  await pageA.waitForSelector(".profile-avatar img.avatar");
  await pageA.fill(".profile-bio", "Likes long lunches");
  await pageA.click(".save-profile");
  await pageA.waitForSelector(".panel [role=status]:text('Saved.')");
  await shot(pageA, "10-profile");
  await pageA.keyboard.press("Escape");
  await pageA.waitForSelector(".me img.avatar");
  step("profile and avatar updated");

  // Mentions: Bob types @ in the group, picks Alice from the offered members and sends.
  await pageB.setViewportSize({ width: 1100, height: 720 });
  await openRoom(pageA, bob.name);
  await openRoom(pageB, "Lunch crew");
  const aliceId = await pageA.evaluate(() => JSON.parse(localStorage.getItem("cronchat.session")).user_id);
  await setHidden(pageA, true);
  await pageB.click(".composer-input");
  await pageB.keyboard.type("Lunch is ready, @");
  const offered = pageB.locator(".mention-picker .mention-option");
  await offered.first().waitFor();
  const offeredNames = await offered.locator(".mention-label").allTextContents();
  await expect(offeredNames.includes(alice.name) && offeredNames.includes("@room"), `Alice and @room offered, got ${JSON.stringify(offeredNames)}`);
  await expect(!offeredNames.includes(bob.name), `not Bob himself, got ${JSON.stringify(offeredNames)}`);
  await shot(pageB, "11-mention-picker");
  const active = () => pageB.getAttribute(".mention-option.active", "data-user-id");
  await expect((await active()) === aliceId, "the first option active");
  await pageB.keyboard.press("ArrowDown");
  await pageB.waitForSelector('.mention-option.active[data-room="true"]');
  await pageB.keyboard.press("ArrowUp");
  await expect((await active()) === aliceId, "back up to Alice");
  await pageB.keyboard.type("ali");
  await pageB.waitForFunction(() => document.querySelectorAll(".mention-picker .mention-option").length === 1);
  await pageB.locator(`.mention-option[data-user-id="${aliceId}"]`).click();
  await pageB.waitForSelector(".mention-picker", { state: "hidden" });
  const drafted = await pageB.inputValue(".composer-input");
  await expect(drafted === `Lunch is ready, @${alice.name} `, `the pick inserted "@${alice.name} ", got ${JSON.stringify(drafted)}`);
  await pageB.keyboard.type("come down");
  await pageB.keyboard.press("Enter");
  const mentionText = `Lunch is ready, @${alice.name} come down`;
  await message(pageB, mentionText).waitFor();
  const carried = JSON.stringify(report.sent_mentions);
  await expect(carried === JSON.stringify([{ who: "bob", mentions: { user_ids: [aliceId], room: false } }]), `the send to carry alice's id, got ${carried}`);
  await message(pageB, mentionText).locator(".mention", { hasText: `@${alice.name}` }).waitFor();
  step("bob picked alice from the @ list and sent the mention");

  // Alice's room list: the mention badge beside the unread count; the tab title says (@).
  const groupItemA = roomItem(pageA, "Lunch crew");
  const mentionBadge = groupItemA.locator(".mention-badge");
  await mentionBadge.waitFor();
  report.mention_badge = await mentionBadge.textContent();
  await expect(report.mention_badge === "@1", `the mention badge "@1", got ${report.mention_badge}`);
  await expect((await groupItemA.locator(".badge").textContent()) === "1", "the unread count beside it");
  await pageA.waitForFunction(() => document.title.startsWith("(@) "));
  report.hidden_title = await pageA.title();
  await shot(pageA, "12-mention-badge");
  await setHidden(pageA, false);
  await pageA.waitForFunction(() => !document.title.startsWith("(@)"));
  step("mention badge shown in alice's room list");

  // Alice opens the room: the mention stands out, and reading it clears the badge.
  await openRoom(pageA, "Lunch crew");
  const mentioned = message(pageA, mentionText);
  await mentioned.and(pageA.locator(".mentions-me")).waitFor();
  await mentioned.locator(".mention.mention-me", { hasText: `@${alice.name}` }).waitFor();
  for (let waited = 0; (await roomOf(pageA, groupId)).unread_mention_count !== 0; waited += 200) {
    await expect(waited < TIMEOUT, "the read to clear the mention count");
    await pageA.waitForTimeout(200);
  }
  await openRoom(pageA, bob.name);
  await expect((await groupItemA.locator(".mention-badge").count()) === 0, "no mention badge once the room is read");
  step("reading the room cleared the mention badge");

  // The room menu: mentions only, and muted for an hour (dimmed, bell-off in the list),
  // also in Alice's second tab (from its room.summary).
  const pageA2 = await contextA.newPage();
  watch(pageA2, "alice_second_tab");
  await pageA2.goto(baseUrl);
  await pageA2.waitForSelector(".status-dot[data-status=online]");
  await openRoom(pageA, "Lunch crew");
  await pageA.click(".room-menu-button");
  await pageA.click('.room-menu .level-option[data-level="mentions"]');
  await pageA.waitForSelector('.room-menu .level-option[data-level="mentions"][aria-checked="true"]');
  await pageA.click('.room-menu .mute-option[data-mute="1h"]');
  await groupItemA.and(pageA.locator(".muted")).locator(".muted-mark").waitFor();
  await roomItem(pageA2, "Lunch crew").and(pageA2.locator(".muted")).locator(".muted-mark").waitFor();
  await pageA2.close();
  await pageA.waitForSelector(".room-menu .unmute-option");
  await shot(pageA, "13-room-menu");
  await pageA.keyboard.press("Escape");
  await pageA.waitForSelector(".room-menu", { state: "hidden" });
  const settings = (await roomOf(pageA, groupId)).notifications;
  await expect(settings.level === "mentions" && settings.muted_until, `the settings stored, got ${JSON.stringify(settings)}`);
  step("notification level and mute set from the room menu, shown in the other tab");

  // Moderation. Alice owns "Lunch crew" (so she moderates it); Sam joins it, a REST client.
  const sam = await restUser(`sam_${suffix}`, "Sam Spammer");
  await expect((await pageApi(pageA, "POST", `/rooms/${groupId}/members`, { user_id: sam.id })).status === 201, "sam added to the group");
  const spam = "Cheap watches at watches.example, today only";
  const samSend = async (text) => {
    const sent = await sam.post(`/rooms/${groupId}/messages`, { client_msg_id: crypto.randomUUID(), text });
    await expect(sent.status === 201, `sam's message sent, got ${sent.status}`);
  };
  await samSend(spam);
  // Alice opens the room's report queue from its header: nothing open yet.
  await openRoom(pageA, "Lunch crew");
  await pageA.click(".reports-button");
  await pageA.waitForSelector(".reports-panel .no-reports");
  // Bob reports Sam's message from its actions: a reason and a comment.
  await openRoom(pageB, "Lunch crew");
  const spamB = message(pageB, spam);
  await spamB.hover();
  await spamB.locator(".act-report").click();
  const reasons = await pageB.locator(".report-reason option").evaluateAll((options) => options.map((option) => option.value).filter(Boolean));
  await expect(JSON.stringify(reasons) === JSON.stringify(["spam", "harassment", "hate", "sexual", "violence", "self_harm", "other"]), `the contract's reasons, got ${reasons}`);
  await expect((await pageB.getAttribute(".report-comment", "maxlength")) === "1000", "comments of at most 1000 characters");
  await pageB.selectOption(".report-reason", "spam");
  await pageB.fill(".report-comment", "Selling watches to everyone");
  await pageB.click(".send-report");
  await pageB.waitForSelector(".overlay", { state: "hidden" });
  await pageB.waitForSelector(".toast:text('moderators')");
  step("bob reported sam's message");
  // The report shows up live in Alice's open panel, with the message's snapshot.
  const queued = pageA.locator(".reports-panel .report");
  await queued.waitFor();
  report.report_in_queue = {
    snapshot: await queued.locator(".snapshot-text").textContent(),
    sender: await queued.locator(".report-snapshot .sender").textContent(),
    reason: await queued.locator(".report-reason-label").textContent(),
    comment: await queued.locator(".report-comment-text").textContent(),
    button: await pageA.textContent(".reports-button"),
  };
  const inQueue = report.report_in_queue;
  await expect(inQueue.snapshot === spam && inQueue.sender === sam.name, `the snapshot of sam's message, got ${JSON.stringify(inQueue)}`);
  await expect(inQueue.reason === "Spam" && inQueue.comment === "Selling watches to everyone", `the reason and comment, got ${JSON.stringify(inQueue)}`);
  await expect(inQueue.button === "Reports (1)", `the header's count, got ${inQueue.button}`);
  await shot(pageA, "14-moderation-queue");
  step("the report shown live in the owner's moderation queue");
  // Alice resolves it with a note: it leaves the open queue.
  await queued.locator(".report-note").fill("Warned Sam");
  await queued.locator(".resolve-report").click();
  await pageA.waitForSelector(".reports-panel .no-reports");
  await expect((await pageA.textContent(".reports-button")) === "Reports", "no count once handled");
  const open = await pageApi(pageA, "GET", `/rooms/${groupId}/reports?status=open`);
  const resolved = await pageApi(pageA, "GET", `/rooms/${groupId}/reports?status=resolved`);
  await expect(open.data.reports.length === 0, `no open report, got ${JSON.stringify(open.data)}`);
  await expect(resolved.data.reports.length === 1 && resolved.data.reports[0].note === "Warned Sam", `resolved with the note, got ${JSON.stringify(resolved.data)}`);
  await pageA.keyboard.press("Escape");
  step("the owner resolved the report and it left the open queue");

  // Bob blocks Sam from the message's actions: Sam's messages collapse, the next one too.
  await spamB.hover();
  await spamB.locator(".act-block").click();
  await pageB.click(".confirm-yes");
  const blockedB = pageB.locator("li.msg.blocked");
  await blockedB.first().waitFor();
  await expect((await message(pageB, spam).count()) === 0, "sam's earlier message collapsed");
  const afterBlock = "Why did you report me?";
  await samSend(afterBlock);
  await pageB.waitForFunction(() => document.querySelectorAll("li.msg.blocked").length === 2);
  await message(pageA, afterBlock).waitFor(); // Alice, who does not block Sam, sees it
  const collapsed = await blockedB.last().textContent();
  await expect(collapsed === "Message from a blocked user", `the collapsed line, got ${collapsed}`);
  await expect((await message(pageB, afterBlock).count()) === 0, "the new message hidden");
  await roomItem(pageB, "Lunch crew").locator(".room-last", { hasText: "Message from a blocked user" }).waitFor();
  report.blocked_message = collapsed;
  await pageB.click(".toast"); // "You blocked Sam Spammer." dismissed, for the picture
  await shot(pageB, "15-blocked-message");
  await blockedB.last().locator(".blocked-note").click();
  await message(pageB, afterBlock).waitFor();
  step("bob blocked sam: sam's next message shows as from a blocked user, shown on a click");

  // Alice mutes Bob for an hour from the member list; Bob's send answers 403 muted.
  await pageA.click(".members-button");
  const bobRow = pageA.locator(".member-list .member", { has: pageA.locator(".member-name", { hasText: bob.name }) });
  await bobRow.locator('.mute-member[data-hours="1"]').click();
  await bobRow.locator(".muted-state").waitFor();
  await bobRow.locator(".unmute-member").waitFor();
  await shot(pageA, "16-members-moderation");
  await send(pageB, "Can I still talk?");
  await pageB.waitForSelector("li.msg.pending.failed");
  const mutedNote = await pageB.locator(".muted-note:not([hidden])").textContent();
  report.muted_note = mutedNote;
  await expect(mutedNote.startsWith("You are muted until "), `the composer's muted notice, got ${mutedNote}`);
  await shot(pageB, "17-muted-composer");
  step("alice muted bob; bob's composer says he is muted until when");
  // Alice bans Sam with a reason: he leaves the member list and shows among the banned.
  const samRow = pageA.locator(".member-list .member", { has: pageA.locator(".member-name", { hasText: sam.name }) });
  await samRow.locator(".ban-member").click();
  await samRow.locator(".ban-reason").fill("Spam");
  await samRow.locator(".confirm-ban").click();
  await pageA.locator(".ban-list .banned", { hasText: sam.name }).locator(".ban-state", { hasText: "Spam" }).waitFor();
  await expect((await pageA.locator(".member-list:not(.ban-list) .member-name", { hasText: sam.name }).count()) === 0, "sam no longer a member");
  await pageA.keyboard.press("Escape");
  step("alice banned sam from the member list");

  // Members: Alice removes Bob from the group; the room leaves Bob's list.
  await openRoom(pageA, "Lunch crew");
  await pageA.click(".members-button");
  await pageA.locator(".member", { hasText: bob.name }).locator(".remove-member").click();
  await pageA.waitForFunction((name) => ![...document.querySelectorAll(".member-name")].some((el) => el.textContent === name), bob.name);
  await pageA.keyboard.press("Escape");
  await pageB.locator(".room-name", { hasText: "Lunch crew" }).waitFor({ state: "detached" });
  step("member removed, room gone from their list");

  // Alice's access token lives 10 s: her page refreshes it and re-authenticates the same
  // socket with an `auth` frame (the scenario may finish sooner than that: wait for it).
  for (let waited = 0; report.auth_frames.alice < 2 && waited < 20000; waited += 250) {
    await pageA.waitForTimeout(250);
  }
  await expect(report.auth_frames.alice >= 2, `a second auth frame, got ${report.auth_frames.alice}`);
  await openRoom(pageA, bob.name);
  await send(pageA, "Still here after a token refresh");
  await openRoom(pageB, alice.name);
  await message(pageB, "Still here after a token refresh").waitFor();
  step("token refreshed on the open socket");

  // The settings survive a reload (a new socket from here on: counted apart).
  report.alice_sockets_before_reload = report.websockets.alice;
  await pageA.reload();
  await pageA.waitForSelector(".status-dot[data-status=online]");
  await openRoom(pageA, "Lunch crew");
  await roomItem(pageA, "Lunch crew").and(pageA.locator(".muted")).waitFor();
  await pageA.click(".room-menu-button");
  await pageA.waitForSelector('.room-menu .level-option[data-level="mentions"][aria-checked="true"]');
  await pageA.click(".room-menu .unmute-option");
  await roomItem(pageA, "Lunch crew").locator(".muted-mark").waitFor({ state: "detached" });
  await pageA.keyboard.press("Escape");
  step("mentions only survives a reload; unmuted");

  // Alice downloads her data: the export is prepared, polled, then linked as a zip.
  await pageA.click(".me");
  await pageA.click(".export-data");
  const exportLink = pageA.locator(".export-link");
  await exportLink.waitFor();
  const zip = await pageA.evaluate(async (href) => {
    const response = await fetch(href);
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { status: response.status, magic: String.fromCharCode(bytes[0], bytes[1]), size: bytes.length };
  }, await exportLink.getAttribute("href"));
  report.export = zip;
  await expect(zip.status === 200 && zip.magic === "PK", `the link gives a zip, got ${JSON.stringify(zip)}`);
  await shot(pageA, "18-export-ready");
  await pageA.keyboard.press("Escape");
  await pageA.click(".me"); // the export is asked for once a day: reopening shows it again
  await pageA.locator(".export-link").waitFor();
  await pageA.keyboard.press("Escape");
  step("alice's data export prepared and downloaded as a zip");

  // Bob deletes his account from the profile: a wrong password is refused, the right one
  // deletes it and logs him out; Alice's direct room now names a deleted user.
  await pageB.click(".me");
  await pageB.click(".delete-account");
  await pageB.fill(".delete-password", "not my password");
  await pageB.click(".confirm-delete-account");
  await pageB.waitForSelector(".delete-form .form-error:text('That password is not right.')");
  await pageB.fill(".delete-password", "correct horse battery");
  await pageB.check(".delete-erase");
  await shot(pageB, "19-delete-account");
  await pageB.click(".confirm-delete-account");
  await pageB.waitForSelector("input[name=username]");
  await roomItem(pageA, "Deleted user").waitFor();
  const loginAgain = await fetch(`${baseUrl}/api/v1/auth/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username: bob.username, password: "correct horse battery" }) });
  await expect(loginAgain.status === 401, `the deleted account cannot log in, got ${loginAgain.status}`);
  step("bob deleted his account and was logged out; alice sees a deleted user");

  await expect(report.dialogs.length === 0, `no dialog, got ${JSON.stringify(report.dialogs)}`);
}

run(main);
