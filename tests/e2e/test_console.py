# ruff: noqa: F811 - the fixtures are imported by name from console_fixtures
"""The moderation console driven in headless Chromium against the real app and a real SQLite file.

The browser runs in Europe/Paris, so a time shown in local time differs from its UTC instant.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from console_fixtures import browser, chromium_path, console, make_console, page  # noqa: F401
from console_support import GROUP, REFUSED_GROUP, SESSION, open_console

from engagequeue import Payload, TaskStatus

PARIS = ZoneInfo("Europe/Paris")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def in_minutes(minutes: int) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(second=0, microsecond=0)


def local_input(instant: datetime) -> str:
    """The datetime-local value of an instant, in the browser's zone (Paris)."""
    return instant.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def utc_title(instant: datetime) -> str:
    """The title the page gives an instant: ISO 8601 UTC, milliseconds when not zero."""
    utc = instant.astimezone(UTC)
    millis = utc.microsecond // 1000
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{millis:03d}Z" if millis else "Z")


def schedule(console, payload, at, group=GROUP):
    return console.behind_the_back(lambda s: s.schedule(SESSION, group, payload, at))


def send_now(console, task):
    """Claim and complete the task behind the page's back, as a worker would."""

    async def send(store):
        [claimed] = await store.claim_due(now=task.scheduled_at)
        return await store.complete(claimed.id)

    return console.behind_the_back(send)


def row(page, text):
    return page.locator("#posts-body tr", has_text=text)


def open_post(page, text):
    page.locator("#posts-body tr", has_text=text).get_by_role("button").click()
    dialog = page.locator("#post-dialog")
    expect()(dialog).to_be_visible()
    return dialog


def week_start(instant: datetime):
    """The Monday of the instant's week, in the browser's zone."""
    local = instant.astimezone(PARIS).date()
    return local - timedelta(days=local.weekday())


def test_the_page_and_its_assets_carry_the_csp_and_nosniff(console, page):
    responses = {}
    page.on("response", lambda r: responses.setdefault(r.url.split("?")[0], r))
    open_console(page, console.url())
    for name in ("", "console.js", "console.css"):
        response = responses[f"{console.base_url}/moderation/{name}"]
        headers = response.headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "style-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "http" not in policy  # no third-party origin
        assert headers["x-content-type-options"] == "nosniff"
    # The page's own markup has no inline script for the policy to refuse.
    assert page.locator("script:not([src])").count() == 0


def test_schedule_an_image_post_and_see_it_in_the_list_and_the_week(console, page):
    # A few posts around it, so the screenshots show a real week.
    base = in_minutes(90)
    for hours, payload in [
        (-30, Payload.text("Good morning! Doors open at 9 today.")),
        (3, Payload.text("Reminder: the live Q&A starts in one hour.")),
        (26, Payload.video("https://cdn.example.com/tour.mp4", "A tour of the new shop")),
        (50, Payload.text("Weekend opening hours: 10:00-18:00.")),
        (74, Payload.audio("https://cdn.example.com/voice-note.ogg")),
    ]:
        schedule(console, payload, base + timedelta(hours=hours))
    done = schedule(
        console, Payload.text("Welcome to our new members!"), base - timedelta(hours=50)
    )
    send_now(console, done)

    open_console(page, console.url())
    form = page.locator("#schedule-form-slot form")
    expect()(form.get_by_label("Image URL")).to_be_hidden()  # the type comes first
    form.get_by_role("radio", name="Image").check()
    form.get_by_label("Image URL").fill("https://cdn.example.com/new-arrivals.jpg")
    form.get_by_label("Caption (optional)").fill("New arrivals are in")
    when = in_minutes(120)
    form.get_by_label("Leaves at").fill(local_input(when))
    form.get_by_role("button", name="Schedule post").click()
    expect()(page.locator("#notice")).to_contain_text("Scheduled")

    [task] = [
        t
        for t in console.behind_the_back(lambda s: s.history(SESSION, GROUP)).items
        if t.payload.media_type == "image"
    ]
    assert task.scheduled_at == when  # sent as the UTC instant of the local time chosen
    assert task.payload.media_url == "https://cdn.example.com/new-arrivals.jpg"
    listed = row(page, "New arrivals are in")
    expect()(listed).to_have_count(1)
    shown = listed.locator("time")
    expect()(shown).to_have_attribute("title", utc_title(when))
    local_time = when.astimezone(PARIS).strftime("%H:%M")
    expect()(shown).to_contain_text(local_time)  # the browser's zone, not UTC
    page.locator("#notice").evaluate("n => n.hidden = true")  # keep the screenshot clean
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "console-list.png"), full_page=True)

    page.get_by_role("tab", name="Week").click()
    if week_start(when) != week_start(datetime.now(UTC)):
        page.get_by_role("button", name="Next week").click()
    item = page.locator("#week-grid .week-item", has_text="New arrivals are in")
    expect()(item).to_have_count(1)
    expect()(item.locator("time")).to_have_attribute("title", utc_title(when))
    expect()(item.locator("time")).to_have_text(local_time)
    day = item.locator("xpath=ancestor::section[contains(@class,'day')]")
    expect()(day.locator(".day-name")).to_contain_text(str(when.astimezone(PARIS).day))
    page.screenshot(path=str(DOCS_IMAGES / "console-week.png"), full_page=True)


def test_edit_a_pending_post(console, page):
    task = schedule(console, Payload.text("Sale starts Friday"), in_minutes(600))
    open_console(page, console.url())
    dialog = open_post(page, "Sale starts Friday")
    dialog.get_by_role("button", name="Edit").click()
    dialog.get_by_role("textbox", name="Text", exact=True).fill("Sale starts Saturday")
    later = in_minutes(660)
    dialog.get_by_label("Leaves at").fill(local_input(later))
    dialog.get_by_role("button", name="Save changes").click()
    expect()(dialog.locator("#post-message")).to_have_text("Saved.")
    expect()(dialog.locator("#post-events")).to_contain_text("edited")
    expect()(row(page, "Sale starts Saturday")).to_have_count(1)
    edited = console.behind_the_back(lambda s: s.get(task.id))
    assert edited.payload.content == "Sale starts Saturday"
    assert edited.scheduled_at == later


def test_an_edit_of_a_post_sent_meanwhile_shows_when_it_left(console, page):
    task = schedule(console, Payload.text("Flash sale!"), in_minutes(5))
    open_console(page, console.url())
    dialog = open_post(page, "Flash sale!")
    dialog.get_by_role("button", name="Edit").click()
    dialog.get_by_role("textbox", name="Text", exact=True).fill("Flash sale, 20% off!")
    sent = send_now(console, task)
    dialog.get_by_role("button", name="Save changes").click()
    message = dialog.locator("#post-message")
    expect()(message).to_contain_text("already sent at")
    sent_at = sent.updated_at.astimezone(PARIS).strftime("%H:%M")
    expect()(message).to_contain_text(sent_at)
    # The form reloaded the current state: sent, nothing left to edit.
    expect()(dialog.locator("#post-facts")).to_contain_text("Sent")
    expect()(dialog.get_by_role("button", name="Save changes")).to_have_count(0)
    expect()(dialog.get_by_role("button", name="Edit")).to_have_count(0)
    assert console.behind_the_back(lambda s: s.get(task.id)).payload.content == "Flash sale!"


def test_cancel_asks_for_confirmation_first(console, page):
    task = schedule(console, Payload.text("Maybe not"), in_minutes(300))
    open_console(page, console.url())
    dialog = open_post(page, "Maybe not")
    dialog.get_by_role("button", name="Cancel post").click()
    confirm = page.locator("#confirm-dialog")
    expect()(confirm).to_be_visible()
    confirm.get_by_role("button", name="Keep it").click()
    expect()(confirm).to_be_hidden()
    assert console.behind_the_back(lambda s: s.get(task.id)).status is TaskStatus.PENDING
    dialog.get_by_role("button", name="Cancel post").click()
    confirm.get_by_role("button", name="Cancel post").click()
    expect()(dialog.locator("#post-message")).to_have_text("The post was cancelled.")
    assert console.behind_the_back(lambda s: s.get(task.id)).status is TaskStatus.CANCELLED
    expect()(dialog.locator("#post-events")).to_contain_text("cancelled")


def test_filter_by_status_and_by_dates(console, page):
    now = datetime.now(PARIS).replace(hour=12, minute=0, second=0, microsecond=0)
    soon = schedule(console, Payload.text("Tomorrow at noon"), now + timedelta(days=1))
    dropped = schedule(console, Payload.text("Dropped one"), now + timedelta(days=2))
    console.behind_the_back(lambda s: s.cancel(dropped.id))
    schedule(console, Payload.text("Next week's post"), now + timedelta(days=8))
    open_console(page, console.url())
    expect()(page.locator("#posts-body tr")).to_have_count(3)

    page.locator("#filters").get_by_label("Cancelled").check()
    page.get_by_role("button", name="Apply").click()
    expect()(page.locator("#posts-body tr")).to_have_count(1)
    expect()(row(page, "Dropped one")).to_have_count(1)

    page.get_by_role("button", name="Reset").click()
    expect()(page.locator("#posts-body tr")).to_have_count(3)
    # Local days: from tomorrow to the day after, in the browser's zone.
    page.get_by_label("From").fill(soon.scheduled_at.astimezone(PARIS).date().isoformat())
    page.get_by_label("To").fill((now + timedelta(days=2)).date().isoformat())
    page.get_by_role("button", name="Apply").click()
    expect()(page.locator("#posts-body tr")).to_have_count(2)
    expect()(row(page, "Next week's post")).to_have_count(0)

    page.locator("#filters").get_by_label("Pending").check()
    page.get_by_role("button", name="Apply").click()
    expect()(page.locator("#posts-body tr")).to_have_count(1)
    expect()(row(page, "Tomorrow at noon")).to_have_count(1)


def test_pages_of_twenty(console, page):
    start = in_minutes(60)
    console.behind_the_back(
        lambda s: s.schedule_many(
            (SESSION, GROUP, Payload.text(f"Post {n:02d}"), start + timedelta(minutes=n))
            for n in range(25)
        )
    )
    open_console(page, console.url())
    expect()(page.locator("#posts-body tr")).to_have_count(20)
    expect()(page.locator("#page-info")).to_have_text("1\u201320 of 25")  # an en dash
    page.get_by_role("button", name="Next", exact=True).click()
    expect()(page.locator("#posts-body tr")).to_have_count(5)
    expect()(row(page, "Post 24")).to_have_count(1)
    expect()(page.get_by_role("button", name="Next", exact=True)).to_be_disabled()


def test_a_post_opens_its_audit_trail(console, page):
    task = schedule(console, Payload.text("Audited"), in_minutes(30))
    console.behind_the_back(lambda s: s.edit(task.id, payload=Payload.text("Audited twice")))
    open_console(page, console.url())
    dialog = open_post(page, "Audited twice")
    events = dialog.locator("#post-events li")
    expect()(events).to_have_count(2)
    expect()(events.nth(0).locator(".event-kind")).to_have_text("created")
    expect()(events.nth(1).locator(".event-kind")).to_have_text("edited")
    trail = console.behind_the_back(lambda s: s.events(task.id))
    expect()(events.nth(1).locator("time")).to_have_attribute("title", utc_title(trail[1].at))


def test_stored_markup_is_shown_as_text(console, page):
    hostile = "<img src=x onerror=\"document.body.dataset.pwned='yes'\"> <b>bold</b>"
    schedule(console, Payload.text(hostile), in_minutes(45))
    schedule(
        console,
        Payload.image("https://cdn.example.com/a.jpg?<script>x</script>", "<svg onload=alert(1)>"),
        in_minutes(50),
    )
    open_console(page, console.url())
    expect()(row(page, hostile)).to_have_count(1)  # the literal text is visible
    dialog = open_post(page, hostile)
    expect()(dialog.locator("#post-facts")).to_contain_text(hostile)
    dialog.get_by_role("button", name="Close").click()
    page.get_by_role("tab", name="Week").click()
    expect()(page.locator("#week-grid")).to_contain_text("<svg onload=alert(1)>")
    assert page.locator("img, svg, b, script:not([src])").count() == 0
    assert page.evaluate("document.body.dataset.pwned") is None


def test_a_refused_group_shows_nothing_of_it(console, page):
    schedule(
        console, Payload.text("SECRET plans of the refused group"), in_minutes(20), REFUSED_GROUP
    )
    answers = []

    def record(response):
        if "/api/" in response.url and quote(REFUSED_GROUP) in response.url:
            answers.append((response.url, response.status, response.text()))

    page.on("response", record)
    open_console(page, console.url(group=REFUSED_GROUP))
    expect()(page.locator("#denied")).to_be_visible()
    expect()(page.locator("#denied")).to_contain_text("Not allowed")
    assert "SECRET" not in page.content()
    expect()(page.locator("#group")).to_be_hidden()
    assert page.locator("#posts-body tr, #week-grid .week-item, #recurring-list li").count() == 0
    assert answers, "the page asked about the group"
    for url, status, text in answers:
        assert status == 403, (url, status)
        body = json.loads(text)
        assert set(body) == {"error", "message"}, body
        assert "SECRET" not in text


def test_the_page_checks_the_limits_and_shows_the_api_422_by_its_field(console, page):
    posted = []
    page.on("request", lambda r: r.method == "POST" and posted.append(r.url))
    open_console(page, console.url())
    form = page.locator("#schedule-form-slot form")
    form.get_by_role("radio", name="Text").check()
    form.get_by_role("textbox", name="Text", exact=True).fill("x" * 4097)
    form.get_by_label("Leaves at").fill(local_input(in_minutes(60)))
    form.get_by_role("button", name="Schedule post").click()
    text_box = form.get_by_role("textbox", name="Text", exact=True)
    error = form.locator(f"#{text_box.get_attribute('id')}-error")
    expect()(error).to_contain_text("the limit is 4,096")
    expect()(form.get_by_role("textbox", name="Text", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    expect()(form.get_by_role("textbox", name="Text", exact=True)).to_be_focused()

    form.get_by_role("radio", name="Image").check()
    url_field = form.get_by_label("Image URL")
    url_field.fill("ftp://cdn.example.com/a.jpg")
    form.get_by_label("Caption (optional)").fill("fine")
    form.get_by_role("button", name="Schedule post").click()
    url_error = form.locator(f"#{url_field.get_attribute('id')}-error")
    expect()(url_error).to_contain_text("http:// or https://")
    assert posted == []  # nothing invalid left the page

    url_field.fill("https://cdn.example.com:0/a.jpg")  # the browser accepts it; the API does not
    form.get_by_role("button", name="Schedule post").click()
    expect()(url_error).to_contain_text("port 0")
    assert len(posted) == 1
    assert console.behind_the_back(lambda s: s.history(SESSION, GROUP)).total == 0


def test_a_disconnected_session_says_its_posts_wait(console, page):
    schedule(console, Payload.text("Waiting post"), in_minutes(-5))
    console.behind_the_back(lambda s: s.session_disconnected(SESSION))
    open_console(page, console.url())
    expect()(page.locator("#connection")).to_have_text("Session disconnected")
    expect()(page.locator("#disconnected-note")).to_contain_text("wait for the reconnection")
    console.behind_the_back(lambda s: s.session_connected(SESSION))
    page.reload()
    page.wait_for_selector("body[data-loaded]")
    expect()(page.locator("#connection")).to_have_text("Session connected")
    expect()(page.locator("#disconnected-note")).to_be_hidden()


def test_without_recurring_endpoints_the_section_is_hidden(make_console, page):
    from starlette.responses import JSONResponse

    def without_recurring(app):
        async def wrapped(scope, receive, send):
            if scope["type"] == "http" and "/engagement/recurring" in scope["path"]:
                response = JSONResponse({"error": "not_found", "message": "Not Found"}, 404)
                await response(scope, receive, send)
                return
            await app(scope, receive, send)

        return wrapped

    console = make_console(without_recurring)
    schedule(console, Payload.text("Still listed"), in_minutes(30))
    open_console(page, console.url())
    expect()(row(page, "Still listed")).to_have_count(1)
    expect()(page.locator("#recurring")).to_be_hidden()


def test_usable_on_a_phone(browser, console):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, timezone_id="Europe/Paris", is_mobile=True
    )
    phone = context.new_page()
    schedule(console, Payload.text("Read on a phone " + "word " * 40), in_minutes(30))
    open_console(phone, console.url())
    expect()(row(phone, "Read on a phone")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px wide)"
    form = phone.locator("#schedule-form-slot form")
    form.get_by_role("radio", name="Text").check()
    expect()(form.get_by_role("textbox", name="Text", exact=True)).to_be_visible()
    context.close()


def test_the_keyboard_reaches_the_form_in_order(console, page):
    open_console(page, console.url())
    order = []
    for _ in range(40):
        page.keyboard.press("Tab")
        label = page.evaluate(
            "(() => { const a = document.activeElement;"
            " return a.labels && a.labels.length ? a.labels[0].textContent.trim()"
            " : (a.textContent || '').trim(); })()"
        )
        order.append(label)
    wanted = ["Session", "Group", "Open", "Posts", "From", "To", "Pending", "Apply"]
    positions = [order.index(name) for name in wanted]
    assert positions == sorted(positions), order
    assert "Text" in order[positions[-1] :]  # the media type choice comes after the list


@pytest.mark.parametrize("name", ["console-list.png", "console-week.png"])
def test_the_documented_screenshots_exist(name):
    path = DOCS_IMAGES / name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    page_text = (DOCS_IMAGES.parent / "console.md").read_text(encoding="utf-8")
    assert re.search(rf"\]\(images/{re.escape(name)}\)", page_text), name
