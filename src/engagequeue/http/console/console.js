// engagequeue moderation console: plain JavaScript, no framework, no build step.
//
// Everything the page shows comes from the router's JSON endpoints, fetched with relative
// URLs (so a router mounted under a prefix works), and every stored text is put in the page
// with textContent, never as markup. Times are shown in the browser's time zone with the
// UTC instant in the title attribute, and are always sent as UTC instants.

const API = new URL("../api/", document.baseURI);
const PAGE_SIZE = 20;
const WEEK_PAGE = 500; // the API's largest page
const TEXT_LIMIT = 4096;
const CAPTION_LIMIT = 1024;
const URL_LIMIT = 2048;
const STATUSES = ["pending", "processing", "completed", "failed", "cancelled"];
const STATUS_LABELS = {
  pending: "Pending",
  processing: "Sending",
  completed: "Sent",
  failed: "Failed",
  cancelled: "Cancelled",
};
const TYPES = ["text", "image", "video", "audio"];
const TYPE_LABELS = { text: "Text", image: "Image", video: "Video", audio: "Audio" };
const WEEKDAYS = [
  ["MO", "Mon"], ["TU", "Tue"], ["WE", "Wed"], ["TH", "Thu"], ["FR", "Fri"], ["SA", "Sat"], ["SU", "Sun"],
];
const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

const fmtDateTime = new Intl.DateTimeFormat(undefined, {
  weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});
const fmtTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fmtDay = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const fmtLongDay = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "long", year: "numeric" });
const fmtNumber = new Intl.NumberFormat();

// ---- small DOM helpers ------------------------------------------------------------------

/** Build an element; string children become text nodes, never markup. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function show(node, visible = true) {
  node.hidden = !visible;
}

// ---- time helpers -----------------------------------------------------------------------

/** Parse an API instant (microseconds and all) into a Date. */
function parseInstant(iso) {
  return new Date(String(iso).replace(/(\.\d{3})\d+/, "$1"));
}

/** The UTC instant as ISO 8601 with Z, without a zero fraction. */
function utcString(date) {
  return date.toISOString().replace(/\.000Z$/, "Z");
}

/** A <time> showing the instant in the browser's zone, the UTC instant on hover. */
function timeEl(iso, format = fmtDateTime) {
  const date = parseInstant(iso);
  const utc = utcString(date);
  return el("time", { datetime: utc, title: utc }, format.format(date));
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** A Date as the value of a datetime-local input (browser time). */
function toLocalInput(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** The start of a YYYY-MM-DD day in the browser's zone, plus `days`. */
function localDay(value, days = 0) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + days);
}

/** How far ``zone``'s wall clock is ahead of UTC at the instant ``ms`` (whole seconds). */
function zoneOffset(ms, zone) {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  });
  const p = Object.fromEntries(format.formatToParts(new Date(ms)).map((part) => [part.type, Number(part.value)]));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}

/** The instant at which ``zone``'s wall clock shows the given date and time. */
function wallTimeIn(zone, year, month, day, hour, minute, second) {
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  const guess = wall - zoneOffset(wall, zone);
  return new Date(wall - zoneOffset(guess, zone)); // the offset at the answer, across a DST change
}

function startOfWeek(date) {
  const day = new Date(date.getFullYear(), date.getMonth(), date.getDate());
  day.setDate(day.getDate() - ((day.getDay() + 6) % 7)); // Monday
  return day;
}

function addDays(date, days) {
  const next = new Date(date);
  next.setDate(next.getDate() + days);
  return next;
}

function sameLocalDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// ---- the API ----------------------------------------------------------------------------

/** Call a JSON endpoint; never throws for an HTTP error, only for a network failure. */
async function api(method, path, { body, query, headers = {} } = {}) {
  const url = new URL(path, API);
  for (const [name, value] of query || []) url.searchParams.append(name, value);
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  return { status: response.status, ok: response.ok, data, etag: response.headers.get("ETag") };
}

const seg = encodeURIComponent;

function groupPath(suffix = "") {
  return `sessions/${seg(state.session)}/groups/${seg(state.group)}/${suffix}`;
}

function taskPath(id, suffix = "") {
  return `moderation/engagement/${seg(id)}${suffix}`;
}

function recurrencePath(id, suffix = "") {
  return `moderation/engagement/recurring/${seg(id)}${suffix}`;
}

function errorMessage(result, fallback) {
  if (result.data && typeof result.data.message === "string") return result.data.message;
  return fallback || `The server answered ${result.status}.`;
}

// ---- page state and notices ---------------------------------------------------------------

const state = {
  session: "",
  group: "",
  offset: 0,
  total: 0,
  filters: { from: "", to: "", statuses: [] },
  weekStart: startOfWeek(new Date()),
  recurringAvailable: false,
};

function notify(message, kind = "info") {
  const box = $("notice");
  box.replaceChildren(el("span", {}, message));
  box.className = `notice ${kind}`;
  show(box);
}

function networkTrouble() {
  notify("The server could not be reached. Check your connection and try again.", "error");
}

// ---- the post form: schedule, edit, recurring ---------------------------------------------

let formCount = 0;

/** Code points, as the API counts them (not UTF-16 units). */
function lengthOf(text) {
  return [...text].length;
}

function checkMediaUrl(value) {
  if (!value) return "Give the address (URL) of the media file.";
  if (value.length > URL_LIMIT) return `The address is ${fmtNumber.format(value.length)} characters long; the limit is ${fmtNumber.format(URL_LIMIT)}.`;
  let url;
  try {
    url = new URL(value);
  } catch {
    return "Give a full address starting with http:// or https://.";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "The address must start with http:// or https://.";
  if (url.username || url.password) return "The address must not contain a user name or password.";
  if (!url.hostname) return "The address has no host.";
  return null;
}

class PostForm {
  /**
   * mode: "schedule" | "edit" | "recurring". task: the post being edited.
   * onSubmit(values) returns an API result, or null when it handled everything itself.
   */
  constructor({ mode, task = null, onSubmit, onDiscard = null }) {
    this.mode = mode;
    this.task = task;
    this.onSubmit = onSubmit;
    this.id = `f${++formCount}`;
    this.fields = {};
    this.build(onDiscard);
    if (task) this.load(task);
  }

  fieldId(name) {
    return `${this.id}-${name}`;
  }

  /** A labelled field with its hint and its (hidden) error line. */
  field(name, label, control, hint = null) {
    const id = this.fieldId(name);
    control.id = id;
    control.name = name;
    const errorLine = el("p", { className: "field-error", id: `${id}-error`, hidden: true });
    const hintLine = hint ? el("p", { className: "hint", id: `${id}-hint` }, hint) : null;
    control.setAttribute("aria-describedby", [hintLine ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" "));
    const wrap = el("div", { className: "field" }, el("label", { for: id }, label), control, hintLine, errorLine);
    this.fields[name] = { wrap, control, errorLine, hintLine, label: wrap.querySelector("label") };
    return wrap;
  }

  build(onDiscard) {
    const typeChoices = TYPES.map((type) =>
      el("label", { className: "segment" },
        el("input", { type: "radio", name: `${this.id}-mediaType`, value: type, onchange: () => this.typeChanged() }),
        el("span", {}, TYPE_LABELS[type])));
    this.typeError = el("p", { className: "field-error", id: `${this.fieldId("mediaType")}-error`, hidden: true });
    this.typeSet = el("fieldset", { className: "field types", "aria-describedby": this.typeError.id },
      el("legend", {}, "Media type"), el("div", { className: "segments" }, typeChoices), this.typeError);
    this.typeHint = el("p", { className: "hint choose-first" }, "Choose the media type first; the fields follow it.");

    const content = el("textarea", { rows: 4 });
    content.addEventListener("input", () => this.updateCounter());
    this.counter = el("span", { className: "counter", "aria-hidden": "true" });
    const contentField = this.field("content", "Text", content);
    contentField.querySelector("label").after(this.counter);

    const mediaUrl = el("input", { type: "url", inputmode: "url", placeholder: "https://", autocomplete: "off", spellcheck: "false" });
    const mediaField = this.field("mediaUrl", "Media URL", mediaUrl, "An http:// or https:// address the gateway can download.");

    const parts = [contentField, mediaField];
    if (this.mode === "recurring") parts.push(...this.buildRule());
    else {
      const when = el("input", { type: "datetime-local", step: 60 });
      parts.push(this.field("scheduledAt", "Leaves at", when, `Your time zone: ${LOCAL_ZONE}.`));
    }
    this.body = el("div", { className: "fields", hidden: true }, parts);
    this.formError = el("p", { className: "form-error", role: "alert", tabindex: -1, hidden: true });
    const submitLabel = { schedule: "Schedule post", edit: "Save changes", recurring: "Create recurring post" }[this.mode];
    this.submitButton = el("button", { type: "submit", className: "button primary" }, submitLabel);
    const buttons = el("div", { className: "actions" }, this.submitButton,
      onDiscard ? el("button", { type: "button", className: "button ghost", onclick: onDiscard }, "Discard") : null);
    this.form = el("form", { className: "post-form", novalidate: true, "aria-label": submitLabel },
      this.typeSet, this.typeHint, this.body, this.formError, buttons);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.typeChanged();
  }

  buildRule() {
    const freq = el("select", {},
      el("option", { value: "DAILY" }, "Every day"),
      el("option", { value: "WEEKLY" }, "Every week on…"),
      el("option", { value: "MONTHLY" }, "Every month on day…"));
    freq.addEventListener("change", () => this.ruleChanged());
    const days = el("fieldset", { className: "field weekdays", id: this.fieldId("days"), "aria-describedby": `${this.fieldId("days")}-error` },
      el("legend", {}, "Days"),
      el("div", { className: "checks" }, WEEKDAYS.map(([code, label]) =>
        el("label", { className: "check" }, el("input", { type: "checkbox", value: code }), el("span", {}, label)))),
      el("p", { className: "field-error", id: `${this.fieldId("days")}-error`, hidden: true }));
    this.daysSet = days;
    const monthDay = el("input", { type: "number", min: 1, max: 31, value: 1, inputmode: "numeric" });
    const time = el("input", { type: "time", value: "09:00", step: 60 });
    const zone = el("input", { type: "text", value: LOCAL_ZONE, list: `${this.id}-zones`, autocomplete: "off", spellcheck: "false" });
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    const zoneList = el("datalist", { id: `${this.id}-zones` }, zones.map((z) => el("option", { value: z })));
    const ends = el("select", {},
      el("option", { value: "never" }, "Never"),
      el("option", { value: "until" }, "On a date"),
      el("option", { value: "count" }, "After a number of posts"));
    ends.addEventListener("change", () => this.ruleChanged());
    const until = el("input", { type: "date" });
    const count = el("input", { type: "number", min: 1, value: 10, inputmode: "numeric" });
    const parts = [
      this.field("rule", "Repeats", freq),
      days,
      this.field("monthDay", "Day of the month", monthDay, "Months without that day are skipped."),
      this.field("time", "At", time),
      this.field("timezone", "Time zone", zone, "The wall-clock time above is in this zone, across DST changes."),
      zoneList,
      this.field("ends", "Ends", ends),
      this.field("until", "Last day", until),
      this.field("count", "Number of posts", count),
    ];
    return parts;
  }

  ruleChanged() {
    if (this.mode !== "recurring") return;
    const freq = this.fields.rule.control.value;
    show(this.daysSet, freq === "WEEKLY");
    show(this.fields.monthDay.wrap, freq === "MONTHLY");
    const ends = this.fields.ends.control.value;
    show(this.fields.until.wrap, ends === "until");
    show(this.fields.count.wrap, ends === "count");
  }

  get mediaType() {
    const checked = this.typeSet.querySelector("input:checked");
    return checked ? checked.value : null;
  }

  typeChanged() {
    const type = this.mediaType;
    show(this.body, type !== null);
    show(this.typeHint, type === null);
    this.submitButton.disabled = type === null; // nothing to submit before the type is chosen
    if (type === null) return;
    const isText = type === "text";
    show(this.fields.content.wrap, type !== "audio");
    show(this.fields.mediaUrl.wrap, !isText);
    this.fields.content.label.textContent = isText ? "Text" : "Caption (optional)";
    this.fields.mediaUrl.label.textContent = `${TYPE_LABELS[type]} URL`;
    this.fields.content.control.required = isText;
    this.fields.mediaUrl.control.required = !isText;
    this.updateCounter();
    this.ruleChanged();
  }

  updateCounter() {
    const type = this.mediaType;
    const limit = type === "text" ? TEXT_LIMIT : CAPTION_LIMIT;
    const used = lengthOf(this.fields.content.control.value);
    this.counter.textContent = `${fmtNumber.format(used)} / ${fmtNumber.format(limit)}`;
    this.counter.classList.toggle("over", used > limit);
  }

  load(task) {
    this.task = task;
    for (const input of this.typeSet.querySelectorAll("input")) input.checked = input.value === task.mediaType;
    this.fields.content.control.value = task.content || "";
    this.fields.mediaUrl.control.value = task.mediaUrl || "";
    if (this.fields.scheduledAt) {
      this.initialWhen = toLocalInput(parseInstant(task.scheduledAt));
      this.fields.scheduledAt.control.value = this.initialWhen;
    }
    this.typeChanged();
    this.clearErrors();
  }

  reset() {
    this.form.reset();
    this.typeChanged();
    this.clearErrors();
  }

  clearErrors() {
    for (const { control, errorLine } of Object.values(this.fields)) {
      control.removeAttribute("aria-invalid");
      errorLine.textContent = "";
      show(errorLine, false);
    }
    for (const line of [this.typeError, this.formError, this.daysSet && this.daysSet.querySelector(".field-error")]) {
      if (!line) continue;
      line.textContent = "";
      show(line, false);
    }
  }

  /** Show an error next to the field the API or the checks name; false if no such field. */
  setError(name, message) {
    let line = null;
    let focus = null;
    if (name === "mediaType") {
      line = this.typeError;
      focus = this.typeSet.querySelector("input");
    } else if (name === "days" && this.daysSet) {
      line = this.daysSet.querySelector(".field-error");
      focus = this.daysSet.querySelector("input");
    } else if (this.fields[name] && !this.fields[name].wrap.hidden) {
      line = this.fields[name].errorLine;
      focus = this.fields[name].control;
      focus.setAttribute("aria-invalid", "true");
    }
    if (!line) return false;
    line.textContent = message;
    show(line);
    return focus;
  }

  showErrors(errors) {
    let first = null;
    for (const { field, message } of errors) {
      const focus = this.setError(field, message);
      if (focus === false) {
        this.formError.textContent = message;
        show(this.formError);
      } else if (!first) first = focus;
    }
    (first || this.formError).focus?.();
  }

  showApiError(result) {
    if (result.status === 422 && result.data) {
      const items = Array.isArray(result.data.errors) && result.data.errors.length
        ? result.data.errors
        : [{ field: result.data.field, message: result.data.message }];
      this.showErrors(items.map((item) => ({ field: apiField(item.field), message: item.message })));
      return;
    }
    this.formError.textContent = errorMessage(result);
    show(this.formError);
  }

  values() {
    const type = this.mediaType;
    const content = this.fields.content.control.value;
    const values = { mediaType: type };
    if (type === "text") values.content = content;
    else if (type === "image" || type === "video") values.content = content.trim() ? content : null;
    else values.content = null;
    values.mediaUrl = type === "text" ? null : this.fields.mediaUrl.control.value.trim();
    if (this.fields.scheduledAt) {
      const raw = this.fields.scheduledAt.control.value;
      values.scheduledAtInput = raw;
      values.scheduledAt = raw ? parseLocalInput(raw) : null;
    }
    return values;
  }

  /** The API's limits, checked before anything is sent. */
  validate(values) {
    const errors = [];
    const type = values.mediaType;
    if (!type) {
      errors.push({ field: "mediaType", message: "Choose a media type." });
      return errors;
    }
    if (type === "text") {
      if (!values.content.trim()) errors.push({ field: "content", message: "Write the text of the post." });
      else if (lengthOf(values.content) > TEXT_LIMIT) {
        errors.push({ field: "content", message: `The text is ${fmtNumber.format(lengthOf(values.content))} characters long; the limit is ${fmtNumber.format(TEXT_LIMIT)}.` });
      }
    } else {
      const problem = checkMediaUrl(values.mediaUrl);
      if (problem) errors.push({ field: "mediaUrl", message: problem });
      if (values.content && lengthOf(values.content) > CAPTION_LIMIT) {
        errors.push({ field: "content", message: `The caption is ${fmtNumber.format(lengthOf(values.content))} characters long; the limit is ${fmtNumber.format(CAPTION_LIMIT)}.` });
      }
    }
    if (this.fields.scheduledAt) {
      if (!values.scheduledAtInput) errors.push({ field: "scheduledAt", message: "Choose when the post leaves." });
      else if (values.scheduledAt === null) errors.push({ field: "scheduledAt", message: "This is not a valid date and time." });
    }
    if (this.mode === "recurring") errors.push(...this.validateRule(values));
    return errors;
  }

  validateRule(values) {
    const errors = [];
    const f = this.fields;
    const freq = f.rule.control.value;
    if (freq === "WEEKLY" && !this.checkedDays().length) errors.push({ field: "days", message: "Choose at least one day." });
    const monthDay = Number(f.monthDay.control.value);
    if (freq === "MONTHLY" && !(Number.isInteger(monthDay) && monthDay >= 1 && monthDay <= 31)) {
      errors.push({ field: "monthDay", message: "Give a day from 1 to 31." });
    }
    if (!/^\d{2}:\d{2}$/.test(f.time.control.value)) errors.push({ field: "time", message: "Give a time such as 09:00." });
    let zone = f.timezone.control.value.trim();
    try {
      if (!zone) throw new RangeError("empty");
      const resolved = new Intl.DateTimeFormat("en", { timeZone: zone }).resolvedOptions().timeZone;
      // The browser takes any case, the server only the IANA spelling; other names the browser
      // maps elsewhere ("EST" becomes "America/Panama") are left as given.
      if (resolved.toLowerCase() === zone.toLowerCase()) zone = resolved;
    } catch {
      errors.push({ field: "timezone", message: "Give an IANA time zone, such as Europe/Paris." });
    }
    const ends = f.ends.control.value;
    if (ends === "until" && !f.until.control.value) errors.push({ field: "until", message: "Choose the last day." });
    const count = Number(f.count.control.value);
    if (ends === "count" && !(Number.isInteger(count) && count >= 1)) errors.push({ field: "count", message: "Give a whole number of at least 1." });
    values.rule = this.rule();
    values.timezone = zone;
    if (ends === "until" && f.until.control.value && !errors.some((e) => e.field === "timezone")) {
      // The last day is a day of the rule's zone, where its occurrences are wall times.
      const [y, m, d] = f.until.control.value.split("-").map(Number);
      values.until = utcString(wallTimeIn(zone, y, m, d, 23, 59, 59));
    }
    if (ends === "count") values.count = count;
    return errors;
  }

  checkedDays() {
    return [...this.daysSet.querySelectorAll("input:checked")].map((input) => input.value);
  }

  /** The RFC 5545 RRULE (without DTSTART) the builder describes. */
  rule() {
    const f = this.fields;
    const freq = f.rule.control.value;
    const [hour, minute] = f.time.control.value.split(":").map(Number);
    const parts = [`FREQ=${freq}`];
    if (freq === "WEEKLY") parts.push(`BYDAY=${this.checkedDays().join(",")}`);
    if (freq === "MONTHLY") parts.push(`BYMONTHDAY=${Number(f.monthDay.control.value)}`);
    parts.push(`BYHOUR=${hour}`, `BYMINUTE=${minute}`);
    return parts.join(";");
  }

  async submit() {
    this.clearErrors();
    const values = this.values();
    const errors = this.validate(values);
    if (errors.length) {
      this.showErrors(errors);
      return;
    }
    this.submitButton.disabled = true;
    try {
      const result = await this.onSubmit(values, this);
      if (result && !result.ok) this.showApiError(result);
    } catch (error) {
      console.error(error);
      this.formError.textContent = "The server could not be reached. Nothing was saved; try again.";
      show(this.formError);
    } finally {
      this.submitButton.disabled = this.mediaType === null;
    }
  }
}

function parseLocalInput(raw) {
  const date = new Date(raw); // "YYYY-MM-DDTHH:MM" without an offset is the browser's time
  return Number.isNaN(date.getTime()) ? null : utcString(date);
}

/** The form field an API error names. */
function apiField(field) {
  const names = {
    content: "content", "payload.content": "content", mediaUrl: "mediaUrl", "payload.media_url": "mediaUrl",
    mediaType: "mediaType", scheduledAt: "scheduledAt", rule: "rule", timezone: "timezone",
    until: "until", count: "count", startsAt: "rule",
  };
  return names[field] || "form";
}

/** The body of a schedule or recurring create: only the fields the media type uses. */
function postBody(values) {
  const body = { mediaType: values.mediaType };
  if (values.content !== null && values.content !== undefined) body.content = values.content;
  if (values.mediaType !== "text") body.mediaUrl = values.mediaUrl;
  return body;
}

// ---- list of posts ------------------------------------------------------------------------

function preview(task) {
  if (task.content) return task.content;
  return task.mediaUrl || "";
}

function statusBadge(status) {
  return el("span", { className: `badge status-${status}` }, STATUS_LABELS[status] || status);
}

function typeBadge(type) {
  return el("span", { className: `type type-${type}` }, TYPE_LABELS[type] || type);
}

/** The mark of an occurrence of a recurring post, in the list and the week. */
function recurringTag(task) {
  return task.recurrenceId ? el("span", { className: "tag" }, "recurring") : null;
}

function historyQuery({ start, end, statuses, limit, offset }) {
  const query = [["limit", String(limit)], ["offset", String(offset)]];
  if (start) query.push(["startDate", start]);
  if (end) query.push(["endDate", end]);
  if (statuses && statuses.length) query.push(["status", statuses.join(",")]);
  return query;
}

function listQuery() {
  const { from, to, statuses } = state.filters;
  return historyQuery({
    start: from ? utcString(localDay(from)) : null,
    end: to ? utcString(localDay(to, 1)) : null,
    statuses,
    limit: PAGE_SIZE,
    offset: state.offset,
  });
}

async function loadList() {
  const result = await api("GET", groupPath("engagement/history"), { query: listQuery() });
  if (!result.ok) {
    if (result.status === 422) {
      $("filters-error").textContent = errorMessage(result);
      show($("filters-error"));
    }
    return result;
  }
  const page = result.data;
  state.total = page.total;
  const rows = page.items.map((task) =>
    el("tr", { dataset: { taskId: task.id }, className: `row-${task.status}` },
      el("td", { className: "when", "data-label": "When" }, timeEl(task.scheduledAt)),
      el("td", { "data-label": "Type" }, typeBadge(task.mediaType), recurringTag(task)),
      el("td", { className: "content", "data-label": "Content" },
        el("button", { type: "button", className: "link preview", onclick: () => openPost(task.id) }, preview(task))),
      el("td", { "data-label": "Status" }, statusBadge(task.status))));
  $("posts-body").replaceChildren(...rows);
  show($("posts-empty"), page.items.length === 0);
  show($("posts-table"), page.items.length > 0);
  const first = page.items.length ? page.offset + 1 : 0;
  const last = page.offset + page.items.length;
  $("page-info").textContent = page.total
    ? `${fmtNumber.format(first)}–${fmtNumber.format(last)} of ${fmtNumber.format(page.total)}`
    : "";
  $("page-prev").disabled = page.offset === 0;
  $("page-next").disabled = last >= page.total;
  return result;
}

function setupFilters() {
  const box = $("filter-statuses");
  box.replaceChildren(...STATUSES.map((status) =>
    el("label", { className: "check" }, el("input", { type: "checkbox", name: "status", value: status }), el("span", {}, STATUS_LABELS[status]))));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const from = $("filter-from").value;
    const to = $("filter-to").value;
    show($("filters-error"), false);
    $("filter-to").removeAttribute("aria-invalid");
    if (from && to && to < from) {
      $("filters-error").textContent = "“To” must not be before “From”.";
      $("filter-to").setAttribute("aria-invalid", "true");
      show($("filters-error"));
      $("filter-to").focus();
      return;
    }
    state.filters = { from, to, statuses: [...box.querySelectorAll("input:checked")].map((i) => i.value) };
    state.offset = 0;
    guarded(loadList);
  });
  $("filter-reset").addEventListener("click", () => {
    $("filters").reset();
    show($("filters-error"), false);
    state.filters = { from: "", to: "", statuses: [] };
    state.offset = 0;
    guarded(loadList);
  });
  $("page-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    guarded(loadList);
  });
  $("page-next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    guarded(loadList);
  });
}

// ---- week view ----------------------------------------------------------------------------

async function loadWeek() {
  const start = state.weekStart;
  const end = addDays(start, 7);
  const items = [];
  for (let offset = 0; ; offset += WEEK_PAGE) {
    const result = await api("GET", groupPath("engagement/history"), {
      query: historyQuery({ start: utcString(start), end: utcString(end), limit: WEEK_PAGE, offset }),
    });
    if (!result.ok) return result;
    items.push(...result.data.items);
    if (items.length >= result.data.total || result.data.items.length === 0) break;
  }
  $("week-title").textContent = `Week of ${fmtLongDay.format(start)}`;
  const today = new Date();
  const days = [];
  for (let i = 0; i < 7; i += 1) {
    const day = addDays(start, i);
    const own = items.filter((task) => sameLocalDay(parseInstant(task.scheduledAt), day));
    days.push(el("section", { className: `day${sameLocalDay(day, today) ? " today" : ""}`, "aria-label": fmtDay.format(day) },
      el("h3", { className: "day-name" }, fmtDay.format(day)),
      own.length
        ? el("ul", { className: "day-items" }, own.map((task) =>
          el("li", {},
            el("button", { type: "button", className: `week-item status-${task.status}`, dataset: { taskId: task.id }, onclick: () => openPost(task.id) },
              el("span", { className: "week-time" }, timeEl(task.scheduledAt, fmtTime), " ", typeBadge(task.mediaType), recurringTag(task)),
              el("span", { className: "week-text" }, preview(task)),
              el("span", { className: "visually-hidden" }, `, ${STATUS_LABELS[task.status]}`)))))
        : el("p", { className: "day-empty" }, "Nothing")));
  }
  $("week-grid").replaceChildren(...days);
  return { ok: true };
}

function setupWeek() {
  $("week-prev").addEventListener("click", () => {
    state.weekStart = addDays(state.weekStart, -7);
    guarded(loadWeek);
  });
  $("week-next").addEventListener("click", () => {
    state.weekStart = addDays(state.weekStart, 7);
    guarded(loadWeek);
  });
  $("week-today").addEventListener("click", () => {
    state.weekStart = startOfWeek(new Date());
    guarded(loadWeek);
  });
}

function setupTabs() {
  const tabs = [$("tab-list"), $("tab-week")];
  const select = (tab) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      show($(other.getAttribute("aria-controls")), selected);
    }
    if (tab.id === "tab-week") guarded(loadWeek);
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      const next = tabs[(tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      select(next);
    });
  }
}

async function refreshViews() {
  await loadList();
  if (!$("panel-week").hidden) await loadWeek();
}

// ---- one post: details, audit trail, edit, cancel -------------------------------------------

const post = { task: null, etag: null, editor: null };

function fact(label, ...value) {
  return [el("dt", {}, label), el("dd", {}, ...value)];
}

function detailText(detail) {
  if (!detail || typeof detail !== "object") return "";
  return Object.entries(detail)
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" · ");
}

function safeLink(url) {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") {
      return el("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer" }, url);
    }
  } catch {
    // not a URL: shown as text below
  }
  return el("span", {}, url);
}

function renderPost(task) {
  post.task = task;
  $("post-dialog-title").textContent = `${TYPE_LABELS[task.mediaType] || task.mediaType} post`;
  const facts = [
    ...fact("Status", statusBadge(task.status)),
    ...fact("Leaves at", timeEl(task.scheduledAt)),
  ];
  if (task.mediaType === "text") facts.push(...fact("Text", el("span", { className: "stored-text" }, task.content || "")));
  else {
    facts.push(...fact("Media URL", safeLink(task.mediaUrl || "")));
    if (task.content) facts.push(...fact("Caption", el("span", { className: "stored-text" }, task.content)));
  }
  facts.push(...fact("Attempts", `${task.attempts}${task.maxAttempts ? ` of ${task.maxAttempts}` : ""}`));
  if (task.lastError) facts.push(...fact("Last error", el("span", { className: "stored-text" }, task.lastError)));
  if (task.recurrenceId) facts.push(...fact("Recurring", "An occurrence of a recurring post; editing it changes this one only."));
  facts.push(...fact("Created", timeEl(task.createdAt)), ...fact("Updated", timeEl(task.updatedAt)));
  $("post-facts").replaceChildren(...facts);
  const pending = task.status === "pending";
  $("post-actions").replaceChildren(...(pending
    ? [
      el("button", { type: "button", className: "button", id: "post-edit", onclick: () => startEdit() }, "Edit"),
      el("button", { type: "button", className: "button danger", id: "post-cancel", onclick: () => cancelPost() }, "Cancel post"),
    ]
    : [el("p", { className: "hint" }, "Only pending posts can be edited or cancelled.")]));
  $("post-edit-slot").replaceChildren();
  post.editor = null;
}

async function loadEvents(id) {
  const result = await api("GET", taskPath(id, "/events"));
  if (!result.ok) {
    $("post-events").replaceChildren(el("li", { className: "hint" }, errorMessage(result, "The audit trail is not available.")));
    return;
  }
  $("post-events").replaceChildren(...result.data.map((event) =>
    el("li", { className: `event kind-${event.kind}` },
      el("span", { className: "event-kind" }, event.kind),
      timeEl(event.at),
      event.detail && Object.keys(event.detail).length ? el("span", { className: "event-detail" }, detailText(event.detail)) : null)));
}

/** Read the post afresh (with its ETag), show it and its audit trail. */
async function reloadPost(id) {
  const result = await api("GET", taskPath(id));
  if (!result.ok) return result;
  post.etag = result.etag;
  renderPost(result.data);
  await loadEvents(id);
  return result;
}

function postMessage(text, kind = "error") {
  const box = $("post-message");
  box.textContent = text;
  box.className = `message ${kind}`;
  show(box, Boolean(text));
}

async function openPost(id) {
  postMessage("");
  const result = await guarded(() => reloadPost(id));
  if (!result || !result.ok) {
    if (result) notify(result.status === 404 ? "This post is no longer available." : errorMessage(result), "error");
    return;
  }
  const dialog = $("post-dialog");
  if (!dialog.open) dialog.showModal();
  $("post-dialog-close").focus();
}

/** Why a post can no longer change, from its current state. */
function conflictText(task) {
  const at = fmtDateTime.format(parseInstant(task.updatedAt));
  switch (task.status) {
    case "completed": return `This post was already sent at ${at}. It can no longer be changed.`;
    case "processing": return `This post is being sent right now (since ${at}). It can no longer be changed.`;
    case "failed": return `This post already failed at ${at}. It can no longer be changed.`;
    case "cancelled": return `This post was already cancelled at ${at}.`;
    default: return "This post changed meanwhile; the current version is shown.";
  }
}

/**
 * A 409 or 412: read the current state, say what happened, show it. The current status
 * decides, not the code: with If-Match, a post sent meanwhile answers 412 (its version moved).
 */
async function handleStale({ editing }) {
  const id = post.task.id;
  const fresh = await reloadPost(id);
  await refreshViews();
  if (!fresh.ok) {
    postMessage("This post is no longer available.");
    return;
  }
  if (fresh.data.status !== "pending") postMessage(conflictText(fresh.data));
  else if (editing) {
    postMessage("Someone changed this post meanwhile. The form now shows the current version; check it and save again.");
    startEdit();
  } else {
    postMessage("Someone changed this post meanwhile. Check the current version above, and cancel again if you still want to.");
  }
}

function ifMatch() {
  return post.etag ? { "If-Match": post.etag } : {};
}

function startEdit() {
  const editor = new PostForm({
    mode: "edit",
    task: post.task,
    onDiscard: () => {
      $("post-edit-slot").replaceChildren();
      post.editor = null;
      $("post-edit")?.focus();
    },
    onSubmit: (values) => saveEdit(values),
  });
  post.editor = editor;
  $("post-edit-slot").replaceChildren(editor.form);
  editor.typeSet.querySelector("input:checked")?.focus();
}

/** Only what changed: a time left alone keeps its seconds. */
function editChanges(task, values, editor) {
  const changes = {};
  if (values.mediaType !== task.mediaType) changes.mediaType = values.mediaType;
  if ((values.content ?? null) !== (task.content ?? null)) changes.content = values.content;
  if (values.mediaType !== "text" && (values.mediaUrl !== task.mediaUrl || changes.mediaType)) changes.mediaUrl = values.mediaUrl;
  if (values.scheduledAtInput !== editor.initialWhen) changes.scheduledAt = values.scheduledAt;
  return changes;
}

async function saveEdit(values) {
  const task = post.task;
  const changes = editChanges(task, values, post.editor);
  if (!Object.keys(changes).length) {
    postMessage("Nothing to save: no field changed.", "info");
    return null;
  }
  const result = await api("PUT", taskPath(task.id), { body: changes, headers: ifMatch() });
  if (result.status === 409 || result.status === 412) {
    await handleStale({ editing: true });
    return null;
  }
  if (result.status === 404) {
    postMessage("This post is no longer available.");
    return null;
  }
  if (!result.ok) return result;
  post.etag = result.etag;
  renderPost(result.data);
  await loadEvents(task.id);
  postMessage("Saved.", "success");
  await refreshViews();
  $("post-dialog-close").focus();
  return null;
}

async function cancelPost() {
  const task = post.task;
  const yes = await confirmDialog("Cancel this post? It will not be sent. This cannot be undone.", "Cancel post");
  if (!yes) return;
  const result = await guarded(() => api("DELETE", taskPath(task.id), { headers: ifMatch() }));
  if (!result) return;
  if (result.status === 409 || result.status === 412) {
    await handleStale({ editing: false });
    return;
  }
  if (!result.ok) {
    postMessage(errorMessage(result));
    return;
  }
  post.etag = result.etag;
  renderPost(result.data);
  await loadEvents(task.id);
  postMessage("The post was cancelled.", "success");
  await refreshViews();
}

/** An in-page confirmation: resolves true for yes, false for no or Escape. */
function confirmDialog(text, yesLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yesLabel;
  return new Promise((resolve) => {
    const finish = (answer) => {
      dialog.removeEventListener("close", onClose);
      $("confirm-yes").onclick = null;
      $("confirm-no").onclick = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onClose = () => finish(false);
    dialog.addEventListener("close", onClose);
    $("confirm-yes").onclick = () => finish(true);
    $("confirm-no").onclick = () => finish(false);
    dialog.showModal();
    $("confirm-no").focus();
  });
}

// ---- schedule -------------------------------------------------------------------------------

function setupSchedule() {
  const form = new PostForm({
    mode: "schedule",
    onSubmit: async (values) => {
      const body = { ...postBody(values), scheduledAt: values.scheduledAt };
      const result = await api("POST", groupPath("engagement"), { body });
      if (!result.ok) return result;
      form.reset();
      notify(`Scheduled: leaves ${fmtDateTime.format(parseInstant(result.data.scheduledAt))}.`, "success");
      await refreshViews();
      return null;
    },
  });
  $("schedule-form-slot").replaceChildren(form.form);
}

// ---- sessions -------------------------------------------------------------------------------

async function loadConnection() {
  const result = await api("GET", groupPath("connection"));
  const pill = $("connection");
  const note = $("disconnected-note");
  if (!result.ok || !result.data || typeof result.data.connected !== "boolean") {
    show(pill, false);
    show(note, false);
    return;
  }
  const connected = result.data.connected;
  pill.textContent = connected ? "Session connected" : "Session disconnected";
  pill.className = `pill ${connected ? "ok" : "warn"}`;
  show(pill);
  note.textContent = connected
    ? ""
    : `Session ${state.session} is disconnected: this group's posts wait for the reconnection, and leave in order once it is back.`;
  show(note, !connected);
}

// ---- recurring posts ------------------------------------------------------------------------

function describeRule(rule) {
  const parts = Object.fromEntries(String(rule).split(";").map((part) => part.split("=")));
  const at = parts.BYHOUR !== undefined && parts.BYMINUTE !== undefined
    ? ` at ${pad(parts.BYHOUR)}:${pad(parts.BYMINUTE)}`
    : "";
  const names = Object.fromEntries(WEEKDAYS);
  const known = new Set(["FREQ", "BYDAY", "BYMONTHDAY", "BYHOUR", "BYMINUTE"]);
  if (Object.keys(parts).some((key) => !known.has(key))) return rule;
  if (parts.FREQ === "DAILY" && !parts.BYDAY && !parts.BYMONTHDAY) return `Every day${at}`;
  if (parts.FREQ === "WEEKLY" && parts.BYDAY && !parts.BYMONTHDAY) {
    return `Every week on ${parts.BYDAY.split(",").map((d) => names[d] || d).join(", ")}${at}`;
  }
  if (parts.FREQ === "MONTHLY" && parts.BYMONTHDAY && !parts.BYDAY) return `Every month on day ${parts.BYMONTHDAY}${at}`;
  return rule;
}

/** When a recurrence stops: after a number of posts, at an instant, or never (nothing shown). */
function recurrenceEnd(item) {
  const parts = [];
  if (item.count) parts.push(`after ${fmtNumber.format(item.count)} ${item.count === 1 ? "post" : "posts"}`);
  if (item.until) parts.push(parts.length ? " or after " : "after ", timeEl(item.until));
  return parts.length ? el("p", { className: "recurrence-end" }, "Ends ", parts) : null;
}

const RECURRENCE_LABELS = { active: "Active", paused: "Paused", ended: "Ended" };

async function loadRecurring() {
  const result = await api("GET", groupPath("engagement/recurring"));
  const items = result.ok ? (Array.isArray(result.data) ? result.data : result.data && result.data.items) : null;
  state.recurringAvailable = Array.isArray(items);
  show($("recurring"), state.recurringAvailable);
  if (!state.recurringAvailable) return;
  $("recurring-list").replaceChildren(...items.map((item) => {
    const actions = [];
    if (item.status === "active") actions.push(el("button", { type: "button", className: "button ghost", onclick: () => recurrenceAction(item, "pause") }, "Pause"));
    if (item.status === "paused") actions.push(el("button", { type: "button", className: "button ghost", onclick: () => recurrenceAction(item, "resume") }, "Resume"));
    if (item.status !== "ended") actions.push(el("button", { type: "button", className: "button danger ghost", onclick: () => recurrenceAction(item, "end") }, "End"));
    return el("li", { className: `recurrence status-${item.status}`, dataset: { recurrenceId: item.id } },
      el("div", { className: "recurrence-main" },
        el("p", { className: "recurrence-rule" }, describeRule(item.rule), el("span", { className: "zone" }, ` (${item.timezone})`)),
        el("p", { className: "recurrence-text" }, typeBadge(item.mediaType), " ", el("span", {}, item.content || item.mediaUrl || "")),
        el("p", { className: "recurrence-next" }, item.nextAt ? ["Next: ", timeEl(item.nextAt), " (your time)"] : "No next occurrence"),
        recurrenceEnd(item)),
      el("div", { className: "recurrence-side" },
        el("span", { className: `badge recurrence-${item.status}` }, RECURRENCE_LABELS[item.status] || item.status),
        el("div", { className: "actions" }, actions)));
  }));
  show($("recurring-empty"), items.length === 0);
}

async function recurrenceAction(item, action) {
  if (action === "end") {
    const yes = await confirmDialog("End this recurring post? Its next occurrence is cancelled and no more are created.", "End it");
    if (!yes) return;
  }
  const result = await guarded(() => (action === "end"
    ? api("DELETE", recurrencePath(item.id))
    : api("POST", recurrencePath(item.id, `/${action}`))));
  if (!result) return;
  if (!result.ok) notify(errorMessage(result), "error");
  else notify({ pause: "Paused.", resume: "Resumed.", end: "Ended." }[action], "success");
  await loadRecurring();
  await refreshViews();
}

function setupRecurring() {
  const form = new PostForm({
    mode: "recurring",
    onSubmit: async (values) => {
      const body = { ...postBody(values), rule: values.rule, timezone: values.timezone };
      if (values.until) body.until = values.until;
      if (values.count) body.count = values.count;
      const result = await api("POST", groupPath("engagement/recurring"), { body });
      if (!result.ok) return result;
      form.reset();
      $("recurring-create").open = false;
      notify(`Recurring post created${result.data.nextAt ? `: first leaves ${fmtDateTime.format(parseInstant(result.data.nextAt))}` : ""}.`, "success");
      await loadRecurring();
      await refreshViews();
      return null;
    },
  });
  $("recurring-form-slot").replaceChildren(form.form);
}

// ---- start ----------------------------------------------------------------------------------

/** Run an action; a network failure becomes a visible notice instead of a silent rejection. */
async function guarded(action) {
  try {
    return await action();
  } catch (error) {
    console.error(error);
    networkTrouble();
    return null;
  }
}

function deny(message) {
  // Nothing of the group is kept or shown: only the refusal.
  show($("group"), false);
  show($("welcome"), false);
  $("denied-text").textContent = message;
  show($("denied"));
}

async function openGroup() {
  const first = await guarded(loadList);
  if (!first) return;
  if (first.status === 403 || first.status === 401) {
    deny("You are not allowed to see this group's posts.");
    return;
  }
  if (!first.ok) {
    deny(errorMessage(first));
    $("denied").querySelector("h1").textContent = first.status === 404 ? "Not found" : "Something went wrong";
    return;
  }
  $("group-title").textContent = state.group;
  $("group-session").textContent = state.session;
  document.title = `${state.group} · Moderation console`;
  show($("welcome"), false);
  show($("group"));
  await guarded(loadConnection);
  await guarded(loadRecurring);
}

function start() {
  const params = new URLSearchParams(location.search);
  state.session = (params.get("session") || "").trim();
  state.group = (params.get("group") || "").trim();
  $("open-session").value = state.session;
  $("open-group").value = state.group;
  setupFilters();
  setupWeek();
  setupTabs();
  setupSchedule();
  setupRecurring();
  $("post-dialog-close").addEventListener("click", () => $("post-dialog").close());
  document.body.dataset.ready = "true";
  if (state.session && state.group) {
    openGroup().finally(() => {
      document.body.dataset.loaded = "true";
    });
  } else {
    document.body.dataset.loaded = "true";
  }
}

start();
