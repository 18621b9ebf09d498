// Web Push in the browser client, in a real chromium driven by playwright-core: the profile's
// "Notifications on this device" toggle (headless chromium has no push service, so turning it
// on installs the service worker and then shows the push service's failure; with permission
// refused it says so), and the service worker (static/sw.js) fed the real server's pushes.
//
// Alice's device is a subscription of the tests' own push service (tests/push_receivers.py),
// registered with her session. While her page is offline, Bob's messages make the server
// push to it; the push service decrypts each one and this script hands the payload to
// Alice's service worker through CDP (ServiceWorker.deliverPushMessage), as chromium would
// on receiving it. Then the notification's click handler brings her page to the room, and
// her reading it makes the server send a "read" push, which closes the notification.
//
// Usage: node push.mjs BASE_URL PUSH_SERVICE_URL OUTDIR. PUSH_SERVICE_URL is the test's door
// to its push service: POST /subscriptions, GET /subscriptions/<token>/pushes?count=N, and
// POST /payloads (a payload built by the server's own code, for a setting this server does
// not have). Prints one JSON object on stdout: {ok, steps, ...}; exits 0 when every check
// passed. Screenshots go to OUTDIR.
import { people } from "./people.mjs";
import { TIMEOUT, scenario } from "./scenario.mjs";

const [baseUrl, pushServiceUrl, outDir] = process.argv.slice(2);
if (!baseUrl || !pushServiceUrl || !outDir) {
  console.error("usage: node push.mjs BASE_URL PUSH_SERVICE_URL OUTDIR");
  process.exit(2);
}
const { register, pageApi, restUser } = people(baseUrl);

const { report, step, expect, shot, run } = scenario(outDir, { pushes: [], notifications: {} });

async function pushService(method, path, body) {
  const response = await fetch(pushServiceUrl + path, { method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`the push service answered ${response.status} to ${method} ${path}: ${text}`);
  return JSON.parse(text);
}

/** The payloads the server pushed to this subscription, once there are `count`. */
async function pushesTo(subscription, count) {
  const { pushes } = await pushService("GET", `/subscriptions/${subscription.token}/pushes?count=${count}`);
  report.pushes = pushes;
  return pushes;
}

/** The service worker's notifications as the page sees them (registration.getNotifications). */
function notifications(page, tag) {
  return page.evaluate(async (tag) => {
    const registration = await navigator.serviceWorker.getRegistration("/");
    const shown = await registration.getNotifications(tag ? { tag } : {});
    return shown.map((notification) => ({ title: notification.title, body: notification.body, tag: notification.tag, data: notification.data }));
  }, tag);
}

/** Wait until the notifications of `tag` satisfy `check`; the last seen otherwise. */
async function waitForNotifications(page, tag, check, what) {
  const deadline = Date.now() + TIMEOUT;
  let shown = [];
  while (Date.now() < deadline) {
    shown = await notifications(page, tag);
    if (check(shown)) return shown;
    await page.waitForTimeout(50);
  }
  throw new Error(`expected ${what}, the notifications are ${JSON.stringify(shown)}`);
}

/** A CDP session of the page's browser that delivers pushes to the app's service worker. */
async function pushDeliverer(context, page) {
  const cdp = await context.newCDPSession(page);
  const registrations = new Map();
  cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations: updated }) => {
    for (const registration of updated) if (!registration.isDeleted) registrations.set(registration.scopeURL, registration.registrationId);
  });
  await cdp.send("ServiceWorker.enable");
  const scope = `${baseUrl}/`;
  return async (payload) => {
    const deadline = Date.now() + TIMEOUT;
    while (!registrations.has(scope) && Date.now() < deadline) await page.waitForTimeout(50);
    await expect(registrations.has(scope), `a service worker registered for ${scope}, got ${[...registrations.keys()]}`);
    await cdp.send("ServiceWorker.deliverPushMessage", { origin: baseUrl, registrationId: registrations.get(scope), data: JSON.stringify(payload) });
  };
}

/** The profile dialog, scrolled to its notifications section once that shows the state. */
async function openProfile(page) {
  await page.click(".me");
  await page.waitForSelector(".notifications-device:not([data-state=loading])");
  await page.locator(".notifications-device").scrollIntoViewIfNeeded();
}

async function main(browser) {
  const suffix = Date.now().toString(36).slice(-5);
  const alice = { username: `alice_${suffix}`, name: "Alice Adams" };
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  context.setDefaultTimeout(TIMEOUT);
  await context.grantPermissions(["notifications"], { origin: baseUrl });
  const page = await context.newPage();
  page.on("pageerror", (error) => report.page_errors.push({ who: "alice", message: String(error) }));
  await register(page, alice.username, alice.name);
  alice.id = (await pageApi(page, "GET", "/users/me")).data.id;
  const bob = await restUser(`bob_${suffix}`, "Bob Brown");
  const created = await pageApi(page, "POST", "/rooms", { name: "Team", member_ids: [bob.id] });
  await expect(created.status === 201, `the group created, got ${created.status}`);
  const roomId = created.data.id;
  await page.locator(".room-item .room-name", { hasText: "Team" }).waitFor();
  step("alice and bob share a group");

  // The toggle, off: this browser has no subscription. Turning it on installs the
  // worker, then the push service's failure is shown in the dialog.
  await openProfile(page);
  const toggle = page.locator(".push-toggle");
  await expect(!(await toggle.isChecked()), "the toggle off before any subscription");
  await shot(page, "01-profile-notifications");
  await toggle.click();
  await page.waitForSelector(".push-error:not(:empty)");
  report.subscribe_error = await page.textContent(".push-error");
  await page.waitForSelector(".push-toggle:not([disabled])");
  await page.locator(".push-error").scrollIntoViewIfNeeded();
  await expect(!(await toggle.isChecked()), "the toggle back off after the failure");
  const worker = await page.evaluate(async () => {
    const registration = await navigator.serviceWorker.getRegistration("/");
    return { scope: registration?.scope, script: registration?.active?.scriptURL };
  });
  report.worker = worker;
  await expect(worker.scope === `${baseUrl}/` && worker.script === `${baseUrl}/sw.js`, `the worker at /sw.js for the whole app, got ${JSON.stringify(worker)}`);
  const none = await pageApi(page, "GET", "/users/me/push");
  await expect(none.status === 200 && none.data.pushers.length === 0, `no device registered after the failure, got ${JSON.stringify(none.data)}`);
  await shot(page, "02-push-unavailable");
  await page.keyboard.press("Escape");
  step("turning notifications on installed the worker and showed the push service's failure");

  // Permission refused: the dialog says so, and nothing is registered.
  const refusing = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  refusing.setDefaultTimeout(TIMEOUT);
  const danaPage = await refusing.newPage();
  danaPage.on("pageerror", (error) => report.page_errors.push({ who: "dana", message: String(error) }));
  await register(danaPage, `dana_${suffix}`, "Dana Dunn");
  await openProfile(danaPage);
  await danaPage.locator(".push-toggle").click();
  await danaPage.waitForSelector(".push-error:not(:empty)");
  report.denied_error = await danaPage.textContent(".push-error");
  report.denied_permission = await danaPage.evaluate(() => Notification.permission);
  await danaPage.locator(".push-error").scrollIntoViewIfNeeded();
  await expect(!(await danaPage.locator(".push-toggle").isChecked()), "the toggle off when permission is refused");
  await shot(danaPage, "03-permission-refused");
  await refusing.close();
  step("with notifications refused the dialog says so");

  // Alice's device: a subscription of the tests' push service, with the server's key.
  const { public_key: publicKey } = await (await fetch(`${baseUrl}/api/v1/push/vapid`)).json();
  const subscription = await pushService("POST", "/subscriptions", { application_server_key: publicKey });
  const device = await pageApi(page, "POST", "/users/me/push", { kind: "webpush", ...subscription.subscription });
  await expect(device.status === 201, `the device registered, got ${device.status} ${JSON.stringify(device.data)}`);
  const deliver = await pushDeliverer(context, page);

  // Alice goes offline: no socket of hers is open, so Bob's messages are pushed.
  await context.setOffline(true);
  await page.waitForSelector(".status-dot[data-status=offline], .status-dot[data-status=connecting]");
  for (let tries = 0; (await bob.get(`/users/${alice.id}`)).data.online; tries += 1) {
    await expect(tries < 100, "the server to see alice offline");
    await page.waitForTimeout(100);
  }
  const tag = `room:${roomId}`;
  const first = await bob.post(`/rooms/${roomId}/messages`, { client_msg_id: `push-${suffix}-1`, text: "Lunch at noon?" });
  await expect(first.status === 201, `bob's message sent, got ${first.status}`);
  const [message] = await pushesTo(subscription, 1);
  await expect(message.type === "message" && message.room_id === roomId && message.room_name === "Team", `a message push of Team, got ${JSON.stringify(message)}`);
  await expect(message.sender?.display_name === "Bob Brown" && message.excerpt === "Lunch at noon?", `the sender and excerpt in the push, got ${JSON.stringify(message)}`);
  await deliver(message);
  const [shown] = await waitForNotifications(page, tag, (list) => list.length === 1, "one notification of the room");
  report.notifications.message = shown;
  await expect(shown.title === "Bob Brown in Team" && shown.body === "Lunch at noon?", `the room and sender in the title, the excerpt as body, got ${JSON.stringify(shown)}`);
  await expect(shown.data?.room_id === roomId, `the room's id in the notification's data, got ${JSON.stringify(shown.data)}`);
  step("bob's message pushed by the server became alice's notification");

  const second = await bob.post(`/rooms/${roomId}/messages`, { client_msg_id: `push-${suffix}-2`, text: "Or at one?" });
  await expect(second.status === 201, `bob's second message sent, got ${second.status}`);
  const newer = (await pushesTo(subscription, 2))[1];
  await expect(newer.type === "message" && newer.excerpt === "Or at one?", `the second push, got ${JSON.stringify(newer)}`);
  await deliver(newer);
  const replaced = await waitForNotifications(page, tag, (list) => list.length === 1 && list[0].body === "Or at one?", "the newer message in place of the older");
  report.notifications.replaced = replaced;
  step("a newer push replaced the room's notification");

  // A direct room has no name: the sender alone is the title.
  const direct = await bob.post("/rooms/direct", { user_id: alice.id });
  await expect(direct.status === 201, `the direct room created, got ${direct.status}`);
  const sent = await bob.post(`/rooms/${direct.data.id}/messages`, { client_msg_id: `push-${suffix}-3`, text: "Just us" });
  await expect(sent.status === 201, `bob's direct message sent, got ${sent.status}`);
  const directPush = (await pushesTo(subscription, 3))[2];
  await expect(directPush.room_id === direct.data.id && !directPush.room_name, `a push of the direct room without a room name, got ${JSON.stringify(directPush)}`);
  await deliver(directPush);
  const [directShown] = await waitForNotifications(page, `room:${direct.data.id}`, (list) => list.length === 1, "the direct room's notification");
  report.notifications.direct = directShown;
  await expect(directShown.title === "Bob Brown" && directShown.body === "Just us", `the sender as the title of a direct message, got ${JSON.stringify(directShown)}`);
  step("a direct message's notification is titled with the sender");

  // The click: the worker brings the open window to the room (its postMessage), Alice
  // reads it, and the server's "read" push closes the notification.
  await context.setOffline(false);
  await page.waitForSelector(".status-dot[data-status=online]");
  const [serviceWorker] = context.serviceWorkers();
  await expect(serviceWorker?.url() === `${baseUrl}/sw.js`, `the app's worker in the context, got ${context.serviceWorkers().map((w) => w.url())}`);
  await serviceWorker.evaluate((id) => openRoomWindow(id), roomId);
  await page.waitForSelector(".room-view:not([hidden]) .room-title:text-is('Team')");
  await page.locator("li.msg .text", { hasText: "Or at one?" }).waitFor();
  step("the notification's click handler opened the room in the open window");
  const read = (await pushesTo(subscription, 4))[3];
  await expect(read.type === "read" && read.room_id === roomId && read.unread_count === 0, `a read push after reading, got ${JSON.stringify(read)}`);
  await deliver(read);
  await waitForNotifications(page, tag, (list) => list.length === 0, "the room's notification closed by the read push");
  const others = await notifications(page);
  await expect(others.length === 1 && others[0].tag === `room:${direct.data.id}`, `the direct room's notification left alone, got ${JSON.stringify(others)}`);
  step("reading the room sent a read push that closed its notification");

  // With CRONCHAT_PUSH_CONTENT=false the payload has no names and no excerpt: a payload
  // built by the server's own function with that setting shows a generic notification.
  const { payload: bare } = await pushService("POST", "/payloads", { type: "message", include_content: false, room_id: roomId, room_name: "Team", seq: 9, message_id: "m-bare", sender_id: bob.id, sender_display_name: "Bob Brown", text: "Secret plans", mention: null, unread_count: 3 });
  await expect(!("room_name" in bare) && !("excerpt" in bare) && !("display_name" in bare.sender), `a payload without content, got ${JSON.stringify(bare)}`);
  await deliver(bare);
  const [generic] = await waitForNotifications(page, tag, (list) => list.length === 1, "a generic notification");
  report.notifications.generic = generic;
  await expect(generic.title === "New message" && generic.body === "3 unread messages", `"New message" with the unread count, got ${JSON.stringify(generic)}`);
  const { payload: bareRead } = await pushService("POST", "/payloads", { type: "read", room_id: roomId, unread_count: 0 });
  await deliver(bareRead);
  await waitForNotifications(page, tag, (list) => list.length === 0, "the generic notification closed by a read");
  step("a push without content showed New message with the unread count");

  // A click with no window open leads to /#room=<id>: that address opens the room.
  const fresh = await context.newPage();
  fresh.on("pageerror", (error) => report.page_errors.push({ who: "alice (new window)", message: String(error) }));
  await fresh.goto(`${baseUrl}/#room=${encodeURIComponent(roomId)}`);
  await fresh.waitForSelector(".room-view:not([hidden]) .room-title:text-is('Team')");
  report.address_after_open = await fresh.evaluate(() => location.href);
  await expect(!report.address_after_open.includes("#room="), `the room taken out of the address, got ${report.address_after_open}`);
  await fresh.close();
  step("the address /#room=<id> opened the room");

  // Logging out forgets this device; the server removes the session's devices.
  await page.click(".logout");
  await page.waitForSelector("input[name=username]");
  report.remembered_after_logout = await page.evaluate(() => localStorage.getItem("cronchat.push"));
  step("logged out");
}

run(main);
