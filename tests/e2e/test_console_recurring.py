# ruff: noqa: F811 - the fixtures are imported by name from console_fixtures
"""The console's recurring posts, driven in headless Chromium against the real app.

Everything is done through the page; the JSON API is only read, to check what the page did.
The browser runs in America/New_York while the rules' wall-clock times are in other zones,
so a time shown in the browser's zone differs both from its UTC instant and from the rule's.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from console_fixtures import (  # noqa: F401
    browser,
    chromium_path,
    console,
    desktop_page,
    make_console,
)
from console_support import GROUP, REFUSED_GROUP, SESSION, open_console

from engagequeue import Payload

BROWSER_ZONE = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAY_CODES = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SCREENSHOT = "console-recurring.png"


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


@pytest.fixture
def page(browser):
    """A page in New York time; page errors fail the test."""
    with desktop_page(browser, "America/New_York") as opened:
        yield opened


# ---- reading the JSON API ----------------------------------------------------------------


def api(page, console, path):
    answer = page.request.get(f"{console.base_url}/api/{path}")
    assert answer.status == 200, (path, answer.status, answer.text())
    return answer.json()


def group_path(suffix, group=GROUP):
    return f"sessions/{quote(SESSION)}/groups/{quote(group)}/engagement/{suffix}"


def recurrences(page, console):
    return api(page, console, group_path("recurring"))


def recurrence(page, console, recurrence_id):
    return api(page, console, f"moderation/engagement/recurring/{quote(recurrence_id)}")


def task(page, console, task_id):
    return api(page, console, f"moderation/engagement/{quote(task_id)}")


def history(page, console):
    return api(page, console, group_path("history?limit=500"))["items"]


def instant(iso):
    return datetime.fromisoformat(iso)


# ---- the occurrences a rule should give, computed here independently -----------------------


def first_on_days(after, zone, weekdays, at):
    """The first wall time ``at`` on one of ``weekdays`` in ``zone``, at or after ``after``."""
    start = after.astimezone(zone).date()
    for offset in range(8):
        day = start + timedelta(days=offset)
        candidate = datetime.combine(day, at, zone)
        if day.weekday() in weekdays and candidate >= after:
            return candidate.astimezone(UTC)
    raise AssertionError("no day in a week")


def first_on_month_day(after, zone, month_day, at):
    local = after.astimezone(zone)
    year, month = local.year, local.month
    for _ in range(3):
        candidate = datetime.combine(date(year, month, month_day), at, zone)
        if candidate >= after:
            return candidate.astimezone(UTC)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise AssertionError("no month day in three months")


def utc_title(moment):
    """The title the page gives an instant: ISO 8601 UTC, milliseconds when not zero."""
    utc = moment.astimezone(UTC)
    millis = utc.microsecond // 1000
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{millis:03d}Z" if millis else "Z")


def check_shown_time(shown, moment):
    """A <time> of the page: the instant in the browser's zone, its UTC instant on hover."""
    expect()(shown).to_have_attribute("title", utc_title(moment))
    local = moment.astimezone(BROWSER_ZONE)
    text = shown.inner_text()
    assert local.strftime("%H:%M") in text, (text, local)
    assert WEEKDAY_NAMES[local.weekday()] in text, (text, local)
    assert f" {local.day} " in f" {text} ", (text, local)


# ---- driving the page ----------------------------------------------------------------------


def recurring_form(page):
    details = page.locator("#recurring-create")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    form = page.locator("#recurring-form-slot form")
    expect()(form).to_be_visible()
    return form


def fill_text_rule(form, text, repeats, at, zone):
    form.get_by_role("radio", name="Text").check()
    form.get_by_role("textbox", name="Text", exact=True).fill(text)
    form.get_by_label("Repeats").select_option(repeats)
    form.get_by_label("At", exact=True).fill(at)
    form.get_by_label("Time zone").fill(zone)


def listed(page, text):
    return page.locator("#recurring-list li", has_text=text)


def post_row(page, text):
    return page.locator("#posts-body tr", has_text=text)


def watch_writes(page):
    """The non-GET API requests the page makes from now on."""
    writes = []
    page.on("request", lambda r: r.method != "GET" and "/api/" in r.url and writes.append(r.url))
    return writes


def week_start(moment):
    local = moment.astimezone(BROWSER_ZONE).date()
    return local - timedelta(days=local.weekday())


# ---- the tests -----------------------------------------------------------------------------


def test_the_weekly_flow_create_list_week_edit_pause_resume_end(console, page):
    open_console(page, console.url())
    expect()(page.locator("#recurring")).to_be_visible()
    expect()(page.locator("#recurring-empty")).to_be_visible()
    # Two days that are not today in Paris, so the first occurrence is a day away at least.
    today = datetime.now(PARIS).date()
    days = sorted({(today + timedelta(days=n)).weekday() for n in (2, 4)})
    form = recurring_form(page)
    fill_text_rule(form, "Weekly tips for members", "WEEKLY", "09:00", "Europe/Paris")
    for day in days:
        form.get_by_role("checkbox", name=WEEKDAY_NAMES[day]).check()
    form.get_by_role("button", name="Create recurring post").click()
    expect()(page.locator("#notice")).to_contain_text("Recurring post created")

    [made] = recurrences(page, console)
    assert (
        made["rule"]
        == f"FREQ=WEEKLY;BYDAY={','.join(WEEKDAY_CODES[d] for d in days)};BYHOUR=9;BYMINUTE=0"
    )
    assert made["timezone"] == "Europe/Paris"
    assert made["status"] == "active"
    assert made["content"] == "Weekly tips for members"
    next_at = instant(made["nextAt"])
    # 09:00 in Paris, not in the browser's New York.
    assert next_at == first_on_days(instant(made["startsAt"]), PARIS, set(days), time(9))

    item = listed(page, "Weekly tips for members")
    expect()(item).to_have_count(1)
    names = ", ".join(WEEKDAY_NAMES[d] for d in days)
    expect()(item.locator(".recurrence-rule")).to_have_text(
        f"Every week on {names} at 09:00 (Europe/Paris)"
    )
    expect()(item.locator(".badge")).to_have_text("Active")
    check_shown_time(item.locator(".recurrence-next time"), next_at)

    # The next occurrence is an ordinary pending post, marked recurring, in the list...
    occurrence = post_row(page, "Weekly tips for members")
    expect()(occurrence).to_have_count(1)
    expect()(occurrence.locator(".tag")).to_have_text("recurring")
    expect()(occurrence).to_contain_text("Pending")
    check_shown_time(occurrence.locator("time"), next_at)
    # ... and in the week view, on its local day.
    page.get_by_role("tab", name="Week").click()
    if week_start(next_at) != week_start(datetime.now(UTC)):
        page.get_by_role("button", name="Next week").click()
    in_week = page.locator("#week-grid .week-item", has_text="Weekly tips for members")
    expect()(in_week).to_have_count(1)
    expect()(in_week.locator(".tag")).to_have_text("recurring")
    expect()(in_week.locator("time")).to_have_attribute("title", utc_title(next_at))
    day = in_week.locator("xpath=ancestor::section[contains(@class,'day')]")
    expect()(day.locator(".day-name")).to_contain_text(str(next_at.astimezone(BROWSER_ZONE).day))
    page.get_by_role("tab", name="Posts").click()

    # Editing that one occurrence is the ordinary edit; the recurrence keeps its payload.
    first_task_id = made["nextTaskId"]
    post_row(page, "Weekly tips for members").get_by_role("button").click()
    dialog = page.locator("#post-dialog")
    expect()(dialog.locator("#post-facts")).to_contain_text("An occurrence of a recurring post")
    dialog.get_by_role("button", name="Edit").click()
    dialog.get_by_role("textbox", name="Text", exact=True).fill("This week only: double tips")
    dialog.get_by_role("button", name="Save changes").click()
    expect()(dialog.locator("#post-message")).to_have_text("Saved.")
    dialog.get_by_role("button", name="Close").click()
    edited = task(page, console, first_task_id)
    assert edited["content"] == "This week only: double tips"
    assert edited["recurrenceId"] == made["id"]
    assert instant(edited["scheduledAt"]) == next_at
    after_edit = recurrence(page, console, made["id"])
    for name in ("content", "mediaType", "mediaUrl", "rule", "timezone", "status", "nextAt"):
        assert after_edit[name] == made[name], name
    assert after_edit["nextTaskId"] == first_task_id
    expect()(listed(page, "Weekly tips for members")).to_have_count(1)
    expect()(post_row(page, "This week only: double tips")).to_have_count(1)

    # Pause: the pending occurrence is cancelled, and the page shows it.
    item = page.locator(f"#recurring-list li[data-recurrence-id='{made['id']}']")
    item.get_by_role("button", name="Pause").click()
    expect()(item.locator(".badge")).to_have_text("Paused")
    expect()(item.locator(".recurrence-next")).to_have_text("No next occurrence")
    expect()(item.get_by_role("button", name="Pause")).to_have_count(0)
    expect()(post_row(page, "This week only: double tips")).to_contain_text("Cancelled")
    paused = recurrence(page, console, made["id"])
    assert paused["status"] == "paused"
    assert paused["nextAt"] is None
    assert task(page, console, first_task_id)["status"] == "cancelled"

    # Resume: a new next occurrence, with the recurrence's own payload.
    before_resume = datetime.now(UTC)
    item.get_by_role("button", name="Resume").click()
    expect()(item.locator(".badge")).to_have_text("Active")
    resumed = recurrence(page, console, made["id"])
    assert resumed["status"] == "active"
    assert resumed["nextTaskId"] not in (None, first_task_id)
    resumed_at = instant(resumed["nextAt"])
    assert resumed_at == first_on_days(before_resume, PARIS, set(days), time(9))
    check_shown_time(item.locator(".recurrence-next time"), resumed_at)
    new_task = task(page, console, resumed["nextTaskId"])
    assert new_task["status"] == "pending"
    assert new_task["content"] == "Weekly tips for members"
    new_row = page.locator(f"#posts-body tr[data-task-id='{resumed['nextTaskId']}']")
    expect()(new_row).to_contain_text("Pending")
    expect()(new_row.locator(".tag")).to_have_text("recurring")

    # End: asks first; "Keep it" changes nothing.
    item.get_by_role("button", name="End").click()
    confirm = page.locator("#confirm-dialog")
    expect()(confirm).to_be_visible()
    expect()(confirm).to_contain_text("End this recurring post?")
    confirm.get_by_role("button", name="Keep it").click()
    expect()(confirm).to_be_hidden()
    assert recurrence(page, console, made["id"])["status"] == "active"
    item.get_by_role("button", name="End").click()
    confirm.get_by_role("button", name="End it").click()
    expect()(item.locator(".badge")).to_have_text("Ended")
    expect()(item.locator(".recurrence-next")).to_have_text("No next occurrence")
    expect()(item.get_by_role("button")).to_have_count(0)
    ended = recurrence(page, console, made["id"])
    assert ended["status"] == "ended"
    assert ended["nextAt"] is None
    assert ended["nextTaskId"] is None
    pending = [t for t in history(page, console) if t["recurrenceId"] and t["status"] == "pending"]
    assert pending == []
    expect()(new_row).to_contain_text("Cancelled")


def test_a_daily_and_a_monthly_rule(console, page):
    open_console(page, console.url())
    form = recurring_form(page)
    fill_text_rule(form, "Good morning, Tokyo team", "DAILY", "07:30", "Asia/Tokyo")
    expect()(form.get_by_role("group", name="Days")).to_be_hidden()  # no days for a daily rule
    last_day = datetime.now(TOKYO).date() + timedelta(days=10)
    form.get_by_label("Ends").select_option("until")
    form.get_by_label("Last day").fill(last_day.isoformat())
    form.get_by_role("button", name="Create recurring post").click()
    expect()(listed(page, "Good morning, Tokyo team")).to_have_count(1)

    form = recurring_form(page)
    form.get_by_role("radio", name="Image").check()
    form.get_by_label("Image URL").fill("https://cdn.example.com/monthly-offers.jpg")
    form.get_by_label("Caption (optional)").fill("This month's offers")
    form.get_by_label("Repeats").select_option("MONTHLY")
    form.get_by_label("Day of the month").fill("15")
    form.get_by_label("At", exact=True).fill("18:00")
    form.get_by_label("Time zone").fill("europe/paris")  # sent with its IANA spelling
    form.get_by_label("Ends").select_option("count")
    form.get_by_label("Number of posts").fill("6")
    form.get_by_role("button", name="Create recurring post").click()
    expect()(listed(page, "This month's offers")).to_have_count(1)

    daily, monthly = recurrences(page, console)  # oldest first
    assert daily["rule"] == "FREQ=DAILY;BYHOUR=7;BYMINUTE=30"
    assert daily["timezone"] == "Asia/Tokyo"
    # The last day is a day in Tokyo, the rule's zone, not in the browser's.
    assert instant(daily["until"]) == datetime.combine(last_day, time(23, 59, 59), TOKYO)
    daily_next = instant(daily["nextAt"])
    started = instant(daily["startsAt"])
    assert daily_next == first_on_days(started, TOKYO, set(range(7)), time(7, 30))
    assert monthly["rule"] == "FREQ=MONTHLY;BYMONTHDAY=15;BYHOUR=18;BYMINUTE=0"
    assert monthly["timezone"] == "Europe/Paris"
    assert monthly["count"] == 6
    assert (monthly["mediaType"], monthly["mediaUrl"], monthly["content"]) == (
        "image",
        "https://cdn.example.com/monthly-offers.jpg",
        "This month's offers",
    )
    monthly_next = instant(monthly["nextAt"])
    assert monthly_next == first_on_month_day(instant(monthly["startsAt"]), PARIS, 15, time(18))

    daily_item = listed(page, "Good morning, Tokyo team")
    expect()(daily_item.locator(".recurrence-rule")).to_have_text("Every day at 07:30 (Asia/Tokyo)")
    check_shown_time(daily_item.locator(".recurrence-next time"), daily_next)
    expect()(daily_item.locator(".recurrence-next")).to_contain_text("(your time)")
    check_shown_time(daily_item.locator(".recurrence-end time"), instant(daily["until"]))
    monthly_item = listed(page, "This month's offers")
    expect()(monthly_item.locator(".recurrence-rule")).to_have_text(
        "Every month on day 15 at 18:00 (Europe/Paris)"
    )
    expect()(monthly_item.locator(".recurrence-end")).to_have_text("Ends after 6 posts")
    check_shown_time(monthly_item.locator(".recurrence-next time"), monthly_next)
    for text in ("Good morning, Tokyo team", "This month's offers"):
        expect()(post_row(page, text).locator(".tag")).to_have_text("recurring")

    page.locator("#notice").evaluate("n => n.hidden = true")  # keep the screenshot clean
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.locator("#recurring").screenshot(path=str(DOCS_IMAGES / SCREENSHOT))


def test_bad_input_is_shown_by_its_field_and_writes_nothing(console, page):
    open_console(page, console.url())
    writes = watch_writes(page)
    form = recurring_form(page)
    fill_text_rule(form, "Never created", "WEEKLY", "09:00", "Europe/Paris")
    form.get_by_role("button", name="Create recurring post").click()
    days = form.get_by_role("group", name="Days")
    error = days.locator(".field-error")
    expect()(error).to_have_text("Choose at least one day.")
    expect()(error).to_be_visible()
    expect()(days).to_have_attribute("aria-describedby", error.get_attribute("id"))
    expect()(days.get_by_role("checkbox").first).to_be_focused()
    assert writes == []  # the page sent nothing

    form.get_by_role("checkbox", name="Wed").check()
    form.get_by_label("Time zone").fill("Mars/Olympus_Mons")
    form.get_by_role("button", name="Create recurring post").click()
    expect()(error).to_be_hidden()
    zone = form.get_by_label("Time zone")
    zone_error = form.locator(f"#{zone.get_attribute('id')}-error")
    expect()(zone_error).to_contain_text("IANA time zone")
    expect()(zone).to_have_attribute("aria-invalid", "true")
    assert writes == []

    # What only the server can judge comes back as its 422, shown next to the field it names.
    zone.fill("+01:00")  # an offset, which Chromium takes as a zone but is no IANA name
    form.get_by_role("button", name="Create recurring post").click()
    expect()(zone_error).to_contain_text("not a known IANA zone")
    assert len(writes) == 1
    zone.fill("Europe/Paris")
    form.get_by_role("radio", name="Image").check()
    url = form.get_by_label("Image URL")
    url.fill("https://cdn.example.com:0/a.jpg")  # the browser accepts it; the API does not
    form.get_by_role("button", name="Create recurring post").click()
    url_error = form.locator(f"#{url.get_attribute('id')}-error")
    expect()(url_error).to_contain_text("port 0")
    expect()(zone_error).to_be_hidden()
    assert len(writes) == 2
    assert recurrences(page, console) == []
    assert history(page, console) == []
    expect()(page.locator("#recurring-list li")).to_have_count(0)


def test_a_refused_group_shows_no_recurring_data(console, page):
    def plan(store):
        return store.add_recurrence(
            SESSION,
            REFUSED_GROUP,
            Payload.text("SECRET weekly plan"),
            "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
            timezone="Europe/Paris",
        )

    secret = console.behind_the_back(plan)
    answers = []

    def record(response):
        if "/api/" in response.url:
            answers.append((response.url, response.status, response.text()))

    page.on("response", record)
    open_console(page, console.url(group=REFUSED_GROUP))
    expect()(page.locator("#denied")).to_contain_text("Not allowed")
    expect()(page.locator("#recurring")).to_be_hidden()
    assert page.locator("#recurring-list li, #posts-body tr").count() == 0
    assert "SECRET" not in page.content()
    assert answers, "the page asked about the group"
    for answer_url, status, text in answers:
        assert status == 403, (answer_url, status)
        assert set(json.loads(text)) == {"error", "message"}
        assert "SECRET" not in text
    # The recurring endpoints refuse it too: 403 on the group, 404 (as if unknown) by id.
    by_group = page.request.get(f"{console.base_url}/api/{group_path('recurring', REFUSED_GROUP)}")
    assert by_group.status == 403
    by_id = page.request.get(
        f"{console.base_url}/api/moderation/engagement/recurring/{quote(secret.id)}"
    )
    assert by_id.status == 404
    assert "SECRET" not in by_group.text() + by_id.text()

    # An allowed group of the same session does not show the refused group's recurrence.
    open_console(page, console.url())
    expect()(page.locator("#recurring")).to_be_visible()
    expect()(page.locator("#recurring-empty")).to_be_visible()
    assert "SECRET" not in page.content()


def test_the_recurring_section_on_a_phone(browser, console):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, timezone_id="America/New_York", is_mobile=True
    )
    phone = context.new_page()
    open_console(phone, console.url())
    form = recurring_form(phone)
    fill_text_rule(form, "Phone-made weekly " + "word " * 30, "WEEKLY", "09:00", "Europe/Paris")
    for name in WEEKDAY_NAMES:
        form.get_by_role("checkbox", name=name).check()
    form.get_by_label("Ends").select_option("until")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the form scrolls sideways ({width}px wide)"
    form.get_by_label("Last day").fill(
        (datetime.now(PARIS).date() + timedelta(days=30)).isoformat()
    )
    form.get_by_role("button", name="Create recurring post").click()
    item = listed(phone, "Phone-made weekly")
    expect()(item.get_by_role("button", name="Pause")).to_be_visible()
    expect()(item.get_by_role("button", name="End")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the list scrolls sideways ({width}px wide)"
    [made] = recurrences(phone, console)
    assert made["rule"].startswith("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;")
    context.close()


def focused_label(page):
    return page.evaluate(
        "(() => { const a = document.activeElement;"
        " return a.labels && a.labels.length ? a.labels[0].textContent.trim()"
        " : (a.textContent || '').trim(); })()"
    )


def test_a_recurring_post_made_with_the_keyboard_alone(console, page):
    open_console(page, console.url())
    for _ in range(80):
        page.keyboard.press("Tab")
        if focused_label(page) == "New recurring post":
            break
    else:
        raise AssertionError("the keyboard never reached the recurring form")
    page.keyboard.press("Enter")
    expect()(page.locator("#recurring-create")).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    assert focused_label(page) == "Text"  # the media type comes first
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.type("Typed, never clicked")
    order = []
    while focused_label(page) != "Create recurring post" and len(order) < 20:
        page.keyboard.press("Tab")
        label = focused_label(page)
        if not order or order[-1] != label:  # a time input takes a Tab per part
            order.append(label)
        if label == "Time zone":
            page.keyboard.press("Control+A")
            page.keyboard.type("Asia/Tokyo")
    assert order == ["Repeats", "At", "Time zone", "Ends", "Create recurring post"], order
    page.keyboard.press("Enter")
    expect()(listed(page, "Typed, never clicked")).to_have_count(1)
    [made] = recurrences(page, console)
    assert (made["rule"], made["timezone"]) == ("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "Asia/Tokyo")


def test_the_documented_recurring_screenshot_exists():
    path = DOCS_IMAGES / SCREENSHOT
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    page_text = (DOCS_IMAGES.parent / "console.md").read_text(encoding="utf-8")
    assert f"](images/{SCREENSHOT})" in page_text
