"""Browser tests of the web client (web/): two Chromium contexts, Ann and Bob, chat with
each other through every flow of the client, against a real parley-server on the real
stores. Run by scripts/test-web (part of scripts/test); screenshots go to
.data/web-artifacts/.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright from PyPI; Playwright's
own browser download is never used.
"""

import os
import re
import sys
import time

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts"))
import parley_tools  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, ".data", "web-artifacts")
TIMEOUT = 15_000


class Server(parley_tools.Server):
    """parley-server on a namespace of its own, serving web/."""

    def __init__(self, binary):
        name = f"web_{int(time.time())}_{os.getpid()}"
        env = dict(os.environ, PARLEY_DEV_MODE="1", PARLEY_NAMESPACE=name, PARLEY_POSTGRES_SCHEMA=name,
                   PARLEY_MONGO_COLLECTION=name, PARLEY_BCRYPT_COST="4", PARLEY_WEB_DIR=os.path.join(ROOT, "web"),
                   PARLEY_LOG_LEVEL="warning")
        super().__init__(binary, env, os.path.join(ARTIFACTS, "server.log"))

    def kill(self):
        self.kill9()


step_number = 0


def shot(page, name):
    global step_number
    step_number += 1
    page.screenshot(path=os.path.join(ARTIFACTS, f"{step_number:02d}-{name}.png"), full_page=True)


def register(page, url, username):
    page.goto(url)
    page.fill("#auth-username", username)
    page.fill("#auth-password", "browser password")
    page.click("#register")
    expect(page.locator("#me")).to_have_text(f"@{username}", timeout=TIMEOUT)


def send(page, text):
    page.fill("#composer-input", text)
    page.click("#send")
    # Acknowledged: shown as a message with a seq, no longer "sending…".
    expect(message(page, text)).to_have_count(1, timeout=TIMEOUT)


def message(page, text):
    return page.locator("#messages li.message:not(.pending)").filter(has=page.locator(".body", has_text=re.compile(f"^{re.escape(text)}$")))


def room(page, title):
    return page.locator("#rooms li.room").filter(has=page.locator(".name", has_text=re.compile(f"^{re.escape(title)}$")))


def run(chromium_path, binary):
    os.makedirs(ARTIFACTS, exist_ok=True)
    for f in os.listdir(ARTIFACTS):
        if f.endswith(".png"):
            os.remove(os.path.join(ARTIFACTS, f))
    server = Server(binary)
    server.start()
    stamp = str(int(time.time()) % 100000)
    ann_name, bob_name = f"ann{stamp}", f"bob{stamp}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", "--disable-gpu"])
            ann_ctx, bob_ctx = browser.new_context(), browser.new_context()
            ann, bob = ann_ctx.new_page(), bob_ctx.new_page()
            for page, who in ((ann, "ann"), (bob, "bob")):
                page.on("pageerror", lambda error, who=who: print(f"{who}: page error: {error}", file=sys.stderr))

            # Register; logging in again works too.
            register(ann, server.url, ann_name)
            register(bob, server.url, bob_name)
            shot(ann, "ann-registered")

            # A private chat started by username: the first message creates the room.
            ann.fill("#direct-username", bob_name)
            ann.click("#new-direct button")
            expect(ann.locator("#room-title")).to_have_text(f"@{bob_name}", timeout=TIMEOUT)
            send(ann, "Hi Bob")
            expect(room(ann, f"@{bob_name}")).to_have_count(1, timeout=TIMEOUT)

            # Bob: the room appears with an unread count and the last message.
            bob_direct = room(bob, f"@{ann_name}")
            expect(bob_direct).to_have_count(1, timeout=TIMEOUT)
            expect(bob_direct.locator(".unread")).to_have_text("1", timeout=TIMEOUT)
            expect(bob_direct.locator(".last")).to_have_text(f"{ann_name}: Hi Bob", timeout=TIMEOUT)
            shot(bob, "bob-unread")
            bob_direct.click()
            expect(message(bob, "Hi Bob")).to_have_count(1, timeout=TIMEOUT)
            expect(bob_direct.locator(".unread")).to_have_count(0, timeout=TIMEOUT)

            # Typing indicator, then Bob's answer.
            bob.type("#composer-input", "Hello", delay=20)
            expect(ann.locator("#typing")).to_have_text(f"{bob_name} is typing…", timeout=TIMEOUT)
            shot(ann, "ann-sees-typing")
            bob.fill("#composer-input", "")
            send(bob, "Hello Ann")
            expect(message(ann, "Hello Ann")).to_have_count(1, timeout=TIMEOUT)
            expect(ann.locator("#typing")).to_have_text("", timeout=TIMEOUT)

            # Reply, edit, delete.
            message(ann, "Hello Ann").locator("button.reply").click()
            expect(ann.locator("#reply-bar")).to_be_visible()
            send(ann, "A reply")
            replied = message(bob, "A reply")
            expect(replied).to_have_count(1, timeout=TIMEOUT)
            expect(replied.locator(".quote")).to_have_text(f"@{bob_name}: Hello Ann", timeout=TIMEOUT)
            message(ann, "Hi Bob").locator("button.edit").click()
            ann.fill("#composer-input", "Hi Bob, edited")
            ann.click("#send")
            edited = message(bob, "Hi Bob, edited")
            expect(edited).to_have_count(1, timeout=TIMEOUT)
            expect(edited.locator(".edited")).to_have_text("(edited)")
            message(ann, "A reply").locator("button.delete").click()
            expect(bob.locator("#messages .body.deleted")).to_have_count(1, timeout=TIMEOUT)
            expect(message(bob, "A reply")).to_have_count(0)
            shot(bob, "bob-reply-edit-delete")

            # Search: the edited text is found (a word's beginning is enough), the deleted message is not.
            bob.fill("#search-input", "edit")
            bob.click("#search-form button")
            result = bob.locator("#search-results li.result")
            expect(result).to_have_count(1, timeout=TIMEOUT)
            expect(result.locator(".last")).to_have_text("Hi Bob, edited")
            expect(result.locator(".name")).to_have_text(f"@{ann_name} · {ann_name}")
            shot(bob, "bob-search")
            bob.fill("#search-input", "reply")
            bob.click("#search-form button")
            expect(bob.locator("#search-results li.hint")).to_have_text("Nothing found.", timeout=TIMEOUT)
            bob.fill("#search-input", "edited")
            bob.click("#search-form button")
            expect(result).to_have_count(1, timeout=TIMEOUT)
            result.click()
            expect(bob.locator("#room-title")).to_have_text(f"@{ann_name}", timeout=TIMEOUT)
            bob.click("#search-close")
            expect(bob.locator("#search-box")).to_be_hidden()

            # A group: create, invite by username, accept, chat.
            ann.fill("#group-name", "Project X")
            ann.click("#new-group button")
            expect(ann.locator("#room-title")).to_have_text("Project X", timeout=TIMEOUT)
            ann.fill("#invite-username", bob_name)
            ann.click("#invite-form button")
            invite = bob.locator("#invites li.invite")
            expect(invite).to_have_count(1, timeout=TIMEOUT)
            expect(invite).to_contain_text("Project X")
            shot(bob, "bob-invited")
            invite.locator("button.accept").click()
            expect(bob.locator("#room-title")).to_have_text("Project X", timeout=TIMEOUT)
            expect(ann.locator("#room-members")).to_contain_text(f"@{bob_name}", timeout=TIMEOUT)
            send(ann, "Welcome to the group")
            expect(message(bob, "Welcome to the group")).to_have_count(1, timeout=TIMEOUT)
            send(bob, "Thanks")
            expect(message(ann, "Thanks")).to_have_count(1, timeout=TIMEOUT)
            shot(ann, "group-chat")

            # Reactions: Ann reacts to Bob's message from the picker, Bob adds his by clicking
            # the chip, Ann takes hers back.
            message(ann, "Thanks").locator("button.react").click()
            message(ann, "Thanks").locator(".picker button", has_text="👍").click()
            expect(message(bob, "Thanks").locator("button.reaction")).to_have_text("👍 1", timeout=TIMEOUT)
            message(bob, "Thanks").locator("button.reaction").click()
            expect(message(ann, "Thanks").locator("button.reaction")).to_have_text("👍 2", timeout=TIMEOUT)
            expect(message(bob, "Thanks").locator("button.reaction.mine")).to_have_count(1)
            message(ann, "Thanks").locator("button.reaction").click()
            expect(message(bob, "Thanks").locator("button.reaction")).to_have_text("👍 1", timeout=TIMEOUT)
            expect(message(ann, "Thanks").locator("button.reaction.mine")).to_have_count(0)

            # A thread: Bob answers Ann's welcome beside the room; the reply stays out of the
            # main timeline, and Ann sees the count and opens the thread.
            message(bob, "Welcome to the group").locator("button.thread").click()
            expect(bob.locator("#thread")).to_be_visible()
            bob.fill("#thread-input", "A reply in the thread")
            bob.click("#thread-send")
            expect(bob.locator("#thread-messages li", has_text="A reply in the thread")).to_have_count(1, timeout=TIMEOUT)
            welcome = message(ann, "Welcome to the group")
            expect(welcome.locator("button.thread-link")).to_have_text("1 reply", timeout=TIMEOUT)
            expect(message(ann, "A reply in the thread")).to_have_count(0)
            welcome.locator("button.thread-link").click()
            expect(ann.locator("#thread-messages li", has_text="A reply in the thread")).to_have_count(1, timeout=TIMEOUT)

            # Presence: each sees the other online in the member list.
            expect(ann.locator("#room-members .member", has_text=f"@{bob_name}").locator(".dot.online")).to_have_count(1, timeout=TIMEOUT)
            expect(bob.locator("#room-members .member", has_text=f"@{ann_name}").locator(".dot.online")).to_have_count(1, timeout=TIMEOUT)

            # A pin (the owner may), and "seen by" on the last message once Bob has read it.
            message(ann, "Thanks").locator("button.pin").click()
            expect(bob.locator("#pins .pin")).to_contain_text("Thanks", timeout=TIMEOUT)
            send(ann, "Seen?")
            expect(message(ann, "Seen?").locator(".seen")).to_have_text(f"Seen by @{bob_name}", timeout=TIMEOUT)
            shot(ann, "thread-reactions-pins-presence")

            # A mention while Bob is in another room: a badge on the group, the message
            # highlighted when he opens it.
            room(bob, f"@{ann_name}").click()
            expect(bob.locator("#room-title")).to_have_text(f"@{ann_name}", timeout=TIMEOUT)
            send(ann, f"@{bob_name} look at this")
            expect(room(bob, "Project X").locator(".mentions")).to_have_text("@1", timeout=TIMEOUT)
            shot(bob, "bob-mentioned")
            room(bob, "Project X").click()
            expect(message(bob, f"@{bob_name} look at this")).to_have_class(re.compile(r"\bmentioned\b"), timeout=TIMEOUT)
            expect(room(bob, "Project X").locator(".mentions")).to_have_count(0)

            # The owner mutes Bob: his message is refused with a reason; unmuted, he writes again.
            ann.locator("#room-members .member", has_text=f"@{bob_name}").locator("button.mute").click()
            expect(ann.locator("#room-members .member", has_text=f"@{bob_name}")).to_contain_text("(muted)", timeout=TIMEOUT)
            bob.fill("#composer-input", "am I muted?")
            bob.click("#send")
            expect(bob.locator("#app-error")).to_contain_text("muted", timeout=TIMEOUT)
            shot(bob, "bob-muted")
            ann.locator("#room-members .member", has_text=f"@{bob_name}").locator("button.unmute").click()
            expect(ann.locator("#room-members .member", has_text=f"@{bob_name}")).not_to_contain_text("(muted)", timeout=TIMEOUT)
            send(bob, "back again")
            expect(message(ann, "back again")).to_have_count(1, timeout=TIMEOUT)

            # The network drops for Bob: a banner; what Ann sends meanwhile arrives after the
            # reconnect (with since), each message once.
            bob_ctx.set_offline(True)
            expect(bob.locator("#banner")).to_be_visible(timeout=TIMEOUT)
            shot(bob, "bob-offline")
            for n in range(1, 4):
                send(ann, f"while you were away {n}")
            bob_ctx.set_offline(False)
            expect(bob.locator("#banner")).to_be_hidden(timeout=TIMEOUT)
            for n in range(1, 4):
                expect(message(bob, f"while you were away {n}")).to_have_count(1, timeout=TIMEOUT)
            shot(bob, "bob-back-online")

            # The server itself goes away (kill -9) and comes back on the same port: both
            # clients show the banner, reconnect by themselves, and miss nothing.
            server.kill()
            expect(bob.locator("#banner")).to_be_visible(timeout=TIMEOUT)
            expect(ann.locator("#banner")).to_be_visible(timeout=TIMEOUT)
            bob.fill("#composer-input", "sent while the server was down")
            bob.click("#send")
            expect(bob.locator("#messages li.pending")).to_have_count(1)
            server.start()
            expect(bob.locator("#banner")).to_be_hidden(timeout=TIMEOUT)
            expect(ann.locator("#banner")).to_be_hidden(timeout=TIMEOUT)
            expect(message(ann, "sent while the server was down")).to_have_count(1, timeout=TIMEOUT)
            send(ann, "after the restart")
            expect(message(bob, "after the restart")).to_have_count(1, timeout=TIMEOUT)
            expect(bob.locator("#messages li.pending")).to_have_count(0)
            shot(bob, "after-server-restart")

            # The room list after all that: the group's last message; a reload keeps the session.
            # The room list is read from PostgreSQL: the restarted server's projector takes
            # over once the killed one's lease expires (10 s), so allow for that.
            bob.reload()
            expect(room(bob, "Project X").locator(".last")).to_have_text(f"{ann_name}: after the restart", timeout=40_000)
            expect(room(bob, f"@{ann_name}")).to_have_count(1)
            shot(bob, "bob-reloaded")

            # A ban: Ann bans Bob from a second group with a reason; Bob is told and the room
            # leaves his list.
            ann.fill("#group-name", "Second")
            ann.click("#new-group button")
            expect(ann.locator("#room-title")).to_have_text("Second", timeout=TIMEOUT)
            ann.fill("#invite-username", bob_name)
            ann.click("#invite-form button")
            invite = bob.locator("#invites li.invite")
            expect(invite).to_have_count(1, timeout=TIMEOUT)
            invite.locator("button.accept").click()
            expect(bob.locator("#room-title")).to_have_text("Second", timeout=TIMEOUT)
            expect(ann.locator("#room-members .member", has_text=f"@{bob_name}")).to_have_count(1, timeout=TIMEOUT)
            ann.once("dialog", lambda dialog: dialog.accept("spam"))
            ann.locator("#room-members .member", has_text=f"@{bob_name}").locator("button.ban").click()
            expect(bob.locator("#app-error")).to_contain_text("You were banned from Second: spam", timeout=TIMEOUT)
            expect(room(bob, "Second")).to_have_count(0, timeout=TIMEOUT)
            expect(ann.locator("#room-members .member", has_text=f"@{bob_name}")).to_have_count(0, timeout=TIMEOUT)
            shot(bob, "bob-banned")

            # The server comes back with another signing secret: the tokens the browsers hold
            # are refused (close 4401), and each client logs out instead of retrying forever.
            server.kill()
            server.env["PARLEY_JWT_SECRET"] = "a different secret of at least 32 bytes, for the test"
            server.start()
            expect(bob.locator("#auth-username")).to_be_visible(timeout=TIMEOUT)
            expect(ann.locator("#auth-username")).to_be_visible(timeout=TIMEOUT)
            shot(bob, "bob-logged-out-after-token-refused")
            browser.close()
    finally:
        server.stop()
    print(f"web: all browser flows passed; screenshots in {ARTIFACTS}")


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
